# The card core's sources, listed once (paths relative to hardware-bridge/): portable C++ (no OpenSSL, no sockets),
# built natively (hardware-bridge/CMakeLists.txt, also in the clang build of the fuzz targets) and into the
# WebAssembly card modules (wasm/CMakeLists.txt).
set(KYOTAKU_CARD_CORE_SOURCES src/apdu.cpp src/jpki.cpp src/virtual_card.cpp src/isodep.cpp src/port100.cpp)
