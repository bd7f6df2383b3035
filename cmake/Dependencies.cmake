# Every dependency comes from Debian 12's packages (see scripts/deps.sh).
find_package(CLI11 CONFIG REQUIRED)
find_package(nlohmann_json 3.10 CONFIG REQUIRED)
find_package(fmt CONFIG REQUIRED)
find_package(CURL REQUIRED)
# libmsgpack-cxx-dev installs msgpack-config.cmake (target msgpackc-cxx), for lib/codec.
find_package(msgpack 4 CONFIG REQUIRED)

# libzookeeper-mt-dev ships no CMake or pkg-config file.
find_path(ZOOKEEPER_INCLUDE_DIR zookeeper/zookeeper.h REQUIRED)
find_library(ZOOKEEPER_MT_LIBRARY NAMES zookeeper_mt REQUIRED)
add_library(zookeeper::mt UNKNOWN IMPORTED)
set_target_properties(zookeeper::mt PROPERTIES
  IMPORTED_LOCATION ${ZOOKEEPER_MT_LIBRARY}
  INTERFACE_INCLUDE_DIRECTORIES ${ZOOKEEPER_INCLUDE_DIR}
  INTERFACE_COMPILE_DEFINITIONS THREADED)
find_package(Threads REQUIRED)
# The gateway's network layer: Boost.Asio and Boost.Beast, header-only. Debian 12's default
# Boost (1.74, libboost-dev); libboost1.81-dev cannot be installed beside libmsgpack-cxx-dev,
# which depends on the default one.
find_package(Boost 1.74 REQUIRED)

if(SVCCTL_TESTS)
  find_package(doctest CONFIG REQUIRED)
endif()
