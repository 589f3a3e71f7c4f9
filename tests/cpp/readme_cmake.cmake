# Builds the README's CMake example (examples/readme/CMakeLists.txt) against the installed
# package, as a reader would, then runs both programs it builds.
# usage: cmake -DPREFIX=... -DSOURCE_DIR=... -DWORK_DIR=... -DGENERATOR=... -P readme_cmake.cmake
file(REMOVE_RECURSE "${WORK_DIR}")

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    list(JOIN ARGN " " command)
    message(FATAL_ERROR "failed (${rc}): ${command}")
  endif()
endfunction()

run("${CMAKE_COMMAND}" -S "${SOURCE_DIR}" -B "${WORK_DIR}" -G "${GENERATOR}"
    "-DCMAKE_PREFIX_PATH=${PREFIX}" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
run("${CMAKE_COMMAND}" --build "${WORK_DIR}")
run("${WORK_DIR}/example_c")
run("${WORK_DIR}/example_cpp")
