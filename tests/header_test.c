/* Compiled once per public header with -DHEADER="mominit/x.h": the header must compile alone. */
#include HEADER
int main(void) { return 0; }
