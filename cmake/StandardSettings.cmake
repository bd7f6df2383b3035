# Interface target carrying the project's compiler settings; every target links it.
add_library(svcctl_settings INTERFACE)
target_compile_options(svcctl_settings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Wunused -Woverloaded-virtual -Wconversion -Wsign-conversion
  -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough)
if(SVCCTL_WERROR)
  target_compile_options(svcctl_settings INTERFACE -Werror)
endif()
if(SVCCTL_SANITIZE)
  target_compile_options(svcctl_settings INTERFACE
    -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_link_options(svcctl_settings INTERFACE -fsanitize=address,undefined)
endif()

if(SVCCTL_FUZZ)
  # Everything is instrumented for coverage; only the fuzz targets link libFuzzer's main.
  target_compile_options(svcctl_settings INTERFACE
    -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_link_options(svcctl_settings INTERFACE -fsanitize=address,undefined)
endif()

# svcctl_add_library(NAME SOURCES... DEPS...): a lib/ module with its own include prefix
# (<svcctl/NAME/...>); what it may include is exactly what DEPS names.
function(svcctl_add_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(svcctl_${name} STATIC ${ARG_SOURCES})
  add_library(svcctl::${name} ALIAS svcctl_${name})
  target_include_directories(svcctl_${name} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include)
  target_link_libraries(svcctl_${name} PUBLIC ${ARG_DEPS} PRIVATE svcctl_settings ${ARG_PRIVATE_DEPS})
endfunction()
