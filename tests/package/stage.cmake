# cmake -DPROJECT_BINARY_DIR=... -DSTAGE=... [-DCONFIG=...] -P stage.cmake
# Fresh install of the lowbit build tree into STAGE (removed first, so no stale headers survive).
file(REMOVE_RECURSE "${STAGE}")
set(config_args)
if(CONFIG)
    set(config_args --config "${CONFIG}")
endif()
execute_process(COMMAND "${CMAKE_COMMAND}" --install "${PROJECT_BINARY_DIR}" --prefix "${STAGE}" ${config_args}
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "cmake --install failed: ${rc}")
endif()
if(NOT EXISTS "${STAGE}/share/cmake/lowbit/lowbitConfig.cmake" OR NOT EXISTS "${STAGE}/include/lowbit/lowbit.hpp")
    message(FATAL_ERROR "install incomplete: lowbitConfig.cmake or lowbit/lowbit.hpp missing under ${STAGE}")
endif()
