#include <cstdio>
#include <iostream>

#include "cli.hpp"
#include "hashmem/error.hpp"

namespace hashmem::cli {

void print_json(const nlohmann::ordered_json& value) { std::cout << value.dump(2) << std::endl; }

}  // namespace hashmem::cli

int main(int argc, char** argv) {
  CLI::App app{"hashmem: hash-addressed memory for language models (Engram, tiered tables, hash attention, "
               "HashHop)"};
  app.set_version_flag("--version", std::string("hashmem ") + hashmem::version());
  app.require_subcommand(1);
  hashmem::cli::Action action;
  hashmem::cli::register_hashhop(app, action);
  hashmem::cli::register_engram(app, action);
  hashmem::cli::register_table(app, action);
  hashmem::cli::register_train(app, action);
  hashmem::cli::register_data(app, action);
  hashmem::cli::register_cluster(app, action);
  hashmem::cli::register_bench(app, action);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return action ? action() : 0;
  } catch (const hashmem::Error& e) {
    std::fprintf(stderr, "hashmem: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "hashmem: out of memory\n");
    return 1;
  }
}
