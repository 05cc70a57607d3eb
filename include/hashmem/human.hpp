// hashmem/human.hpp — numbers written for people (CLI output, benchmark reports).
// Threads: safe from any thread.
#pragma once

#include <string>

namespace hashmem {

// "1.50 GiB": bytes with a binary unit (B, KiB, MiB, GiB, TiB), two decimals.
std::string human_bytes(double bytes);

}  // namespace hashmem
