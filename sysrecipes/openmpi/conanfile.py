import glob
import os

from conan import ConanFile
from conan.errors import ConanException
from conan.tools.files import copy

# Debian 12's Open MPI under ConanCenter's name, for lowbit's with_mpi option in the offline Conan check (.ci/run):
#   conan create sysrecipes/openmpi --version=4.1.4 -s compiler.cppstd=20
# A system library: the package points at Debian's headers and libraries (never at /usr/include itself) and
# copies nothing but the license.


def _openmpi_root():
    """Debian's Open MPI folder, /usr/lib/<multiarch>/openmpi, holding include/mpi.h and lib/libmpi.so."""
    for root in sorted(glob.glob("/usr/lib/*/openmpi")):
        if os.path.isfile(os.path.join(root, "include", "mpi.h")):
            return root
    raise ConanException("Open MPI not found under /usr/lib/*/openmpi: apt-get install libopenmpi-dev")


class DebianOpenMPI(ConanFile):
    name = "openmpi"
    package_type = "shared-library"
    settings = "os", "arch", "compiler", "build_type"

    def package_id(self):
        self.info.clear()

    def package(self):
        _openmpi_root()  # fail here, naming the package to install, rather than at link time
        copy(self, "copyright", "/usr/share/doc/libopenmpi-dev", os.path.join(self.package_folder, "licenses"))

    def package_info(self):
        root = _openmpi_root()
        self.cpp_info.set_property("cmake_file_name", "openmpi")
        self.cpp_info.set_property("cmake_target_name", "openmpi::openmpi")
        self.cpp_info.includedirs = [os.path.join(root, "include")]
        self.cpp_info.libdirs = [os.path.join(root, "lib")]
        self.cpp_info.bindirs = []
        # mpi.h declares Open MPI's C++ bindings unless OMPI_SKIP_MPICXX is defined; lowbit uses the C API only.
        self.cpp_info.defines = ["OMPI_SKIP_MPICXX=1"]
        self.cpp_info.libs = ["mpi"]
