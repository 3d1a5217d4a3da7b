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
    # with_mpi: the component lowbit::mpi (data-parallel training on MPI, docs/distributed.md), which needs an
    # MPI (ConanCenter's openmpi, or sysrecipes' wrapper of Debian's). The headers are the same either way.
    options = {"with_mpi": [True, False]}
    default_options = {"with_mpi": False}
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
        if self.options.with_mpi:
            self.requires("openmpi/[>=4.1 <5]")

    def package_id(self):
        self.info.clear()

    def validate(self):
        check_min_cppstd(self, 20)

    def package(self):
        copy(self, "LICENSE*", self.source_folder, join(self.package_folder, "licenses"))
        copy(self, "*.hpp", join(self.source_folder, "include"), join(self.package_folder, "include"))

    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "lowbit")
        self.cpp_info.set_property("pkg_config_name", "lowbit")
        core = self.cpp_info.components["core"]
        core.set_property("cmake_target_name", "lowbit::lowbit")
        core.set_property("pkg_config_name", "lowbit")
        core.bindirs = []
        core.libdirs = []
        core.requires = ["xtensor::xtensor", "xsimd::xsimd"]
        # Same decision as the CMake target: XTENSOR_USE_XSIMD is part of lowbit's interface.
        core.defines = ["XTENSOR_USE_XSIMD"]
        if self.settings.os in ("Linux", "FreeBSD"):
            core.system_libs = ["pthread"]  # kernels run on std::thread
        if self.options.with_mpi:
            mpi = self.cpp_info.components["mpi"]
            mpi.set_property("cmake_target_name", "lowbit::mpi")
            mpi.bindirs = []
            mpi.libdirs = []
            mpi.requires = ["core", "openmpi::openmpi"]
