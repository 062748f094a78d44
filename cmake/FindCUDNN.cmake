# FindCUDNN: locate cuDNN 8/9 headers and the main library.
#
# Searched, in order: CUDNN_ROOT (CMake or environment variable), the CUDA
# toolkit, and the layout of the Python package nvidia-cudnn (a folder
# .../site-packages/nvidia/cudnn with include/cudnn.h and lib/libcudnn.so.9,
# where a PyTorch-based GPU machine keeps cuDNN; that package ships no
# unversioned libcudnn.so, so the versioned name is searched too).
#
# Defines CUDNN_FOUND, CUDNN_INCLUDE_DIR, CUDNN_LIBRARY, CUDNN_VERSION and the
# imported target CUDNN::cudnn.

set(_cudnn_hints)
if(CUDNN_ROOT)
  list(APPEND _cudnn_hints ${CUDNN_ROOT})
endif()
if(DEFINED ENV{CUDNN_ROOT})
  list(APPEND _cudnn_hints $ENV{CUDNN_ROOT})
endif()
if(CUDAToolkit_LIBRARY_ROOT)
  list(APPEND _cudnn_hints ${CUDAToolkit_LIBRARY_ROOT})
endif()
if(CUDAToolkit_INCLUDE_DIRS)
  foreach(_inc ${CUDAToolkit_INCLUDE_DIRS})
    get_filename_component(_parent ${_inc} DIRECTORY)
    list(APPEND _cudnn_hints ${_parent})
  endforeach()
endif()
# The Python nvidia/cudnn package, if a python3 with it is on the PATH.
if(NOT CUDNN_NO_PYTHON_SEARCH)
  find_program(_cudnn_python NAMES python3 python)
  if(_cudnn_python)
    execute_process(
      COMMAND ${_cudnn_python} -c "import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__) if nvidia.cudnn.__file__ else list(nvidia.cudnn.__path__)[0])"
      OUTPUT_VARIABLE _cudnn_py_dir OUTPUT_STRIP_TRAILING_WHITESPACE
      ERROR_QUIET RESULT_VARIABLE _cudnn_py_rc)
    if(_cudnn_py_rc EQUAL 0 AND _cudnn_py_dir)
      list(APPEND _cudnn_hints ${_cudnn_py_dir})
    endif()
  endif()
endif()

find_path(CUDNN_INCLUDE_DIR cudnn.h
  HINTS ${_cudnn_hints}
  PATH_SUFFIXES include targets/x86_64-linux/include)
find_library(CUDNN_LIBRARY
  NAMES cudnn libcudnn.so.9 libcudnn.so.8
  HINTS ${_cudnn_hints}
  PATH_SUFFIXES lib lib64 lib/x64 targets/x86_64-linux/lib)

set(CUDNN_VERSION "")
if(CUDNN_INCLUDE_DIR)
  set(_vfile ${CUDNN_INCLUDE_DIR}/cudnn_version.h)
  if(NOT EXISTS ${_vfile})
    set(_vfile ${CUDNN_INCLUDE_DIR}/cudnn.h)
  endif()
  file(STRINGS ${_vfile} _major REGEX "^#define CUDNN_MAJOR [0-9]+")
  file(STRINGS ${_vfile} _minor REGEX "^#define CUDNN_MINOR [0-9]+")
  file(STRINGS ${_vfile} _patch REGEX "^#define CUDNN_PATCHLEVEL [0-9]+")
  string(REGEX REPLACE ".* ([0-9]+)" "\\1" _major "${_major}")
  string(REGEX REPLACE ".* ([0-9]+)" "\\1" _minor "${_minor}")
  string(REGEX REPLACE ".* ([0-9]+)" "\\1" _patch "${_patch}")
  if(_major)
    set(CUDNN_VERSION "${_major}.${_minor}.${_patch}")
  endif()
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CUDNN
  REQUIRED_VARS CUDNN_LIBRARY CUDNN_INCLUDE_DIR
  VERSION_VAR CUDNN_VERSION)

if(CUDNN_FOUND AND NOT TARGET CUDNN::cudnn)
  add_library(CUDNN::cudnn UNKNOWN IMPORTED)
  set_target_properties(CUDNN::cudnn PROPERTIES
    IMPORTED_LOCATION ${CUDNN_LIBRARY}
    INTERFACE_INCLUDE_DIRECTORIES ${CUDNN_INCLUDE_DIR})
endif()
mark_as_advanced(CUDNN_INCLUDE_DIR CUDNN_LIBRARY)
