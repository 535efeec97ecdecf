// Reading a whole regular file into memory.
#pragma once

#include <string>
#include <vector>

namespace descent::state_io {

// Throws DESCENT_ERR_IO naming the path and the system's reason (missing, unreadable, not a
// regular file), DESCENT_ERR_OUT_OF_MEMORY when the file does not fit in memory.
std::vector<unsigned char> read_file(const std::string& path);

}  // namespace descent::state_io
