import os

from conan import ConanFile
from conan.errors import ConanException
from conan.tools.files import copy

# Debian 12's header-only xtl / xsimd / xtensor under ConanCenter's names, for the offline Conan check
# (.ci/run, packaging.md §2.1). Name and version come from the command line, in this order:
#   conan create sysrecipes --name=xtl --version=0.7.2 -s compiler.cppstd=20
#   conan create sysrecipes --name=xsimd --version=8.1.0 -s compiler.cppstd=20
#   conan create sysrecipes --name=xtensor --version=0.24.3 -s compiler.cppstd=20
_DEPS = {"xtl": [], "xsimd": ["xtl/0.7.2"], "xtensor": ["xtl/0.7.2", "xsimd/8.1.0"]}
_DEBIAN_PKG = {"xtl": "xtl-dev", "xsimd": "libxsimd-dev", "xtensor": "libxtensor-dev"}


class DebianHeaderLibrary(ConanFile):
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"

    def requirements(self):
        for ref in _DEPS[str(self.name)]:
            self.requires(ref)

    def package_id(self):
        self.info.clear()

    def package(self):
        src = os.path.join("/usr/include", str(self.name))
        if not os.path.isdir(src):
            raise ConanException(f"{src} not found: apt-get install {_DEBIAN_PKG[str(self.name)]}")
        # Copy, never point includedirs at /usr/include (breaks libstdc++'s #include_next <stdlib.h>).
        copy(self, "*", src, os.path.join(self.package_folder, "include", str(self.name)))
        copy(self, "copyright", os.path.join("/usr/share/doc", _DEBIAN_PKG[str(self.name)]),
             os.path.join(self.package_folder, "licenses"))

    def package_info(self):
        name = str(self.name)
        for prop in ("cmake_file_name", "cmake_target_name", "pkg_config_name"):
            self.cpp_info.set_property(prop, name)  # CCI's names: no namespace
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        self.cpp_info.requires = [f"{r.split('/')[0]}::{r.split('/')[0]}" for r in _DEPS[name]]
        if name == "xtensor":
            self.cpp_info.defines = ["XTENSOR_USE_XSIMD"]
