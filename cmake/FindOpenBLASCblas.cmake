# FindOpenBLASCblas: OpenBLAS's library and its cblas.h (Debian keeps the
# header under /usr/include/<triplet>/). Defines OpenBLASCblas_FOUND,
# OpenBLASCblas_LIBRARY, OpenBLASCblas_INCLUDE_DIR and the imported target
# OpenBLASCblas::OpenBLASCblas.
find_library(OpenBLASCblas_LIBRARY NAMES openblas openblas64
  HINTS ${OpenBLAS_ROOT} $ENV{OpenBLAS_ROOT} PATH_SUFFIXES lib lib64)
find_path(OpenBLASCblas_INCLUDE_DIR cblas.h
  HINTS ${OpenBLAS_ROOT} $ENV{OpenBLAS_ROOT}
  PATH_SUFFIXES include include/openblas openblas)

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(OpenBLASCblas
  REQUIRED_VARS OpenBLASCblas_LIBRARY OpenBLASCblas_INCLUDE_DIR)

if(OpenBLASCblas_FOUND AND NOT TARGET OpenBLASCblas::OpenBLASCblas)
  add_library(OpenBLASCblas::OpenBLASCblas UNKNOWN IMPORTED)
  set_target_properties(OpenBLASCblas::OpenBLASCblas PROPERTIES
    IMPORTED_LOCATION ${OpenBLASCblas_LIBRARY}
    INTERFACE_INCLUDE_DIRECTORIES ${OpenBLASCblas_INCLUDE_DIR})
endif()
mark_as_advanced(OpenBLASCblas_LIBRARY OpenBLASCblas_INCLUDE_DIR)
