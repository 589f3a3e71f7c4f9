/* main.c compiled as C++17. */
#include "main.c"
