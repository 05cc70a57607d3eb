// libhashmem.so has no code of its own: it is libhashmem.a linked whole (cmake/packaging.cmake). CMake wants one
// source file per library target; this is it.
