export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig"   # PREFIX: where dlshare is installed
cc -std=c11 example.c $(pkg-config --cflags --libs dlshare) -o example_c
c++ -std=c++17 example.cpp $(pkg-config --cflags --libs dlshare) -o example_cpp
export LD_LIBRARY_PATH="$(pkg-config --variable=libdir dlshare)"
./example_c && ./example_cpp
