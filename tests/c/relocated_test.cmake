# The installed package still works after the whole prefix is moved: copy it elsewhere, then
# build and run the example consumer (examples/CMakeLists.txt) against the copy only.
# usage: cmake -DPREFIX=... -DWORK_DIR=... -DEXAMPLE_DIR=... -DGENERATOR=... -P relocated_test.cmake
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
file(COPY "${PREFIX}/" DESTINATION "${WORK_DIR}/moved-prefix")

# no file of the moved package may still name the original prefix
file(GLOB_RECURSE package_files "${WORK_DIR}/moved-prefix/*.cmake" "${WORK_DIR}/moved-prefix/*.pc")
foreach(f IN LISTS package_files)
  file(READ "${f}" text)
  string(FIND "${text}" "${PREFIX}" at)
  if(NOT at EQUAL -1)
    message(FATAL_ERROR "${f} contains the absolute install prefix ${PREFIX}")
  endif()
endforeach()

execute_process(
  COMMAND "${CMAKE_CTEST_COMMAND}" --build-and-test "${EXAMPLE_DIR}" "${WORK_DIR}/build"
          --build-generator "${GENERATOR}"
          --build-options "-DCMAKE_PREFIX_PATH=${WORK_DIR}/moved-prefix"
                          "-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF"
          --test-command "${WORK_DIR}/build/dlshare_demo"
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the example did not build or run against the moved prefix")
endif()
