// Output files of the training app: checking, before any work is done, that
// a file or folder can be written, and writing text files atomically. Every
// failure is an lrt::Error naming the flag and the path.
#pragma once

#include <functional>
#include <iosfwd>
#include <string>

namespace lrt::app {

// The folder must take a file: an existing folder, or a missing one whose
// nearest existing ancestor is a folder that takes a file. Tested by creating
// (and removing) a file, since access(W_OK) says yes to root for a read-only
// folder. Creates nothing: make_dir does that once every check has passed,
// so a refused run leaves no empty folder behind.
void check_writable_dir(const std::string& dir, const char* flag);

// Creates a folder that check_writable_dir accepted.
void make_dir(const std::string& dir, const char* flag);

// The file's folder exists and takes a file, and the path is not a folder.
void check_writable_file(const std::string& path, const char* flag);

// Writes path through path.tmp and a rename, so a failed or interrupted write
// leaves any previous file whole; the temporary file is removed on failure.
void write_text_atomically(const std::string& path, const char* flag,
                           const std::function<void(std::ostream&)>& write);

}  // namespace lrt::app
