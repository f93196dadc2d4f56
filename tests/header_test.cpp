// Compiled once per public header as C++: the header must compile alone and be C++-safe.
#include HEADER
int main() { return 0; }
