# A program linked against dlshare::dlshare_static does not need libdlshare.so at run time.
# usage: cmake -DREADELF=... -DPROGRAM=... -P check_static.cmake
execute_process(COMMAND "${READELF}" -d "${PROGRAM}"
                OUTPUT_VARIABLE dynamic RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${READELF} -d ${PROGRAM} failed (${rc})")
endif()
if(dynamic MATCHES "NEEDED[^\n]*libdlshare")
  message(FATAL_ERROR "${PROGRAM} needs libdlshare.so; it should contain the static library:\n"
                      "${dynamic}")
endif()
message(STATUS "${PROGRAM} has no libdlshare.so dependency (statically linked)")
