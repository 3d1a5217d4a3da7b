import re
from os.path import join

from conan import ConanFile
from conan.tools.build import check_min_cppstd
from conan.tools.files import copy, load
from conan.tools.layout import basic_layout

required_conan_version = ">=2.0"


class LowbitConan(ConanFile):
    name = "lowbit"
    description = "Quantized neural networks: a C++20 header-only template library on xtensor/xsimd"
    license = "MIT"
    topics = ("quantization", "neural-networks", "header-only", "simd")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"  # only for validate()
    exports_sources = "include/*", "LICENSE*"
    no_copy_source = True

    def set_version(self):
        # Single source of truth: project(lowbit VERSION x.y.z) in CMakeLists.txt.
        cmakelists = load(self, join(self.recipe_folder, "CMakeLists.txt"))
        match = re.search(r"project\(\s*lowbit\s+VERSION\s+([0-9]+\.[0-9]+\.[0-9]+)", cmakelists)
        self.version = match.group(1) if match else "0.1.0"

    def layout(self):
        basic_layout(self, src_folder=".")

    def requirements(self):
        # xtensor FIRST: the graph is expanded depth-first in declaration order, so xtensor's pinned xsimd
        # settles the xsimd range (xsimd first -> version conflict on ConanCenter). <0.26: 0.26 moved the
        # headers into subfolders.
        self.requires("xtensor/[>=0.24.3 <0.26]")
        self.requires("xsimd/[>=8.1 <14]")  # lowbit includes xsimd directly

    def package_id(self):
        self.info.clear()

    def validate(self):
        check_min_cppstd(self, 20)

    def package(self):
        copy(self, "LICENSE*", self.source_folder, join(self.package_folder, "licenses"))
        copy(self, "*.hpp", join(self.source_folder, "include"), join(self.package_folder, "include"))

    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "lowbit")
        self.cpp_info.set_property("cmake_target_name", "lowbit::lowbit")
        self.cpp_info.set_property("pkg_config_name", "lowbit")
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        # Same decision as the CMake target: XTENSOR_USE_XSIMD is part of lowbit's interface.
        self.cpp_info.defines = ["XTENSOR_USE_XSIMD"]
        if self.settings.os in ("Linux", "FreeBSD"):
            self.cpp_info.system_libs = ["pthread"]  # kernels run on std::thread
