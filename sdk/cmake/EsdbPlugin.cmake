# esdb_plugin_options(<target>): the compile flags every piece of plugin code
# needs so the plugin can be unloaded (no STB_GNU_UNIQUE symbols, hidden
# symbols). Use it on static/object libraries that go into a plugin too.
function(esdb_plugin_options target)
  set_target_properties(${target} PROPERTIES
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    POSITION_INDEPENDENT_CODE ON)
  # GCC only: clang never emits STB_GNU_UNIQUE and rejects the flag.
  target_compile_options(${target} PRIVATE $<$<CXX_COMPILER_ID:GNU>:-fno-gnu-unique>)
endfunction()

# esdb_add_plugin(<target> SOURCES <src>... [LIBRARIES <lib>...] [OUTPUT_DIR <dir>])
# Builds a plugin shared library lib<target>.so against esdb::sdk.
function(esdb_add_plugin target)
  cmake_parse_arguments(ARG "" "OUTPUT_DIR" "SOURCES;LIBRARIES" ${ARGN})
  add_library(${target} MODULE ${ARG_SOURCES})
  target_link_libraries(${target} PRIVATE esdb::sdk ${ARG_LIBRARIES})
  esdb_plugin_options(${target})
  set_target_properties(${target} PROPERTIES PREFIX "lib")
  if(ARG_OUTPUT_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${ARG_OUTPUT_DIR})
  elseif(DEFINED ESDB_PLUGIN_OUTPUT_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${ESDB_PLUGIN_OUTPUT_DIR})
  endif()
endfunction()
