# Packaging (included by CMakeLists.txt): the shared libhashmem beside the static one, and what `cmake --install`
# puts under the prefix: include/hashmem/*, lib/libhashmem.{a,so}, lib/libhashmem_torch.so,
# lib/cmake/hashmem (find_package(hashmem): hashmem::hashmem = shared, hashmem::hashmem_static) and
# lib/pkgconfig/hashmem.pc. docs/serving.md.
include(CMakePackageConfigHelpers)

# The shared library is the static one's objects, whole (they are -fPIC: CMAKE_POSITION_INDEPENDENT_CODE), so
# nothing is compiled twice and the targets the tests link stay as they were.
add_library(hashmem_shared SHARED cmake/shared_library.cpp)
set_target_properties(hashmem_shared PROPERTIES OUTPUT_NAME hashmem EXPORT_NAME hashmem
  VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})
target_link_libraries(hashmem_shared PRIVATE "$<LINK_LIBRARY:WHOLE_ARCHIVE,hashmem>")
target_include_directories(hashmem_shared INTERFACE $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/include>
                                                    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_link_libraries(hashmem_shared INTERFACE Threads::Threads)
set_target_properties(hashmem PROPERTIES EXPORT_NAME hashmem_static)

install(DIRECTORY include/hashmem DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS hashmem hashmem_shared EXPORT hashmemTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# The PyTorch operators (torch.ops.load_library); not part of the CMake package: it is loaded, not linked.
install(TARGETS hashmem_torch LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})

set(HASHMEM_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/hashmem)
install(EXPORT hashmemTargets NAMESPACE hashmem:: DESTINATION ${HASHMEM_CMAKE_DIR})
configure_package_config_file(cmake/hashmemConfig.cmake.in ${CMAKE_BINARY_DIR}/hashmemConfig.cmake
  INSTALL_DESTINATION ${HASHMEM_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/hashmemConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/hashmemConfig.cmake ${CMAKE_BINARY_DIR}/hashmemConfigVersion.cmake
  DESTINATION ${HASHMEM_CMAKE_DIR})

file(RELATIVE_PATH HASHMEM_PC_TO_PREFIX /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
configure_file(cmake/hashmem.pc.in ${CMAKE_BINARY_DIR}/hashmem.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/hashmem.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
