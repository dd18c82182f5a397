// The layering is true, and docs/architecture.md says what it is: no module
// includes a header of a module after it in the order the document lists,
// and the document's module graph is the one the #include lines draw.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

fs::path source_root() {
  const char* root = std::getenv("CHITTY_SOURCE_ROOT");
  REQUIRE(root != nullptr);  // set by meson test
  return root;
}

std::string read(const fs::path& p) {
  std::ifstream in(p);
  REQUIRE(in.good());
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The modules in the order docs/architecture.md lists them ("**name**
// (`src/name`) — ..." paragraphs).
std::vector<std::string> documented_order(const std::string& doc) {
  std::vector<std::string> out;
  std::regex para(R"(^\*\*([a-z]+)\*\* \(`src/([a-z]+)`\))");
  std::istringstream in(doc);
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_search(line, m, para) && m[1] == m[2]) out.push_back(m[1]);
  }
  return out;
}

// The graph the document draws: "| module | what it includes |" rows under
// "## The module graph".
std::map<std::string, std::set<std::string>> documented_graph(const std::string& doc) {
  std::map<std::string, std::set<std::string>> out;
  auto start = doc.find("## The module graph");
  REQUIRE(start != std::string::npos);
  std::istringstream in(doc.substr(start));
  std::regex row(R"(^\| `([a-z]+)` \| (.*) \|$)");
  std::regex name("`([a-z]+)`");
  std::string line;
  std::getline(in, line);  // the heading
  while (std::getline(in, line)) {
    if (line.rfind("## ", 0) == 0) break;
    std::smatch m;
    if (!std::regex_match(line, m, row)) continue;
    auto& uses = out[m[1]];
    std::string rest = m[2];
    for (auto it = std::sregex_iterator(rest.begin(), rest.end(), name); it != std::sregex_iterator(); ++it) {
      uses.insert((*it)[1]);
    }
  }
  return out;
}

struct Include {
  std::string from;    // the module of the file
  std::string to;      // the module included
  std::string where;   // file:line
};

std::vector<Include> includes(const fs::path& root, const std::vector<std::string>& modules) {
  std::vector<Include> out;
  std::regex inc(R"(^\s*#\s*include\s+"chitty/([a-z]+)/)");
  for (const auto& m : modules) {
    for (const fs::path& dir : {root / "src" / m, root / "include" / "chitty" / m}) {
      if (!fs::exists(dir)) continue;
      for (const auto& e : fs::recursive_directory_iterator(dir)) {
        auto ext = e.path().extension();
        if (ext != ".cpp" && ext != ".hpp") continue;
        std::istringstream in(read(e.path()));
        int n = 0;
        for (std::string line; std::getline(in, line);) {
          ++n;
          std::smatch s;
          if (std::regex_search(line, s, inc) && s[1] != m) {
            out.push_back({m, s[1], fs::relative(e.path(), root).string() + ":" + std::to_string(n)});
          }
        }
      }
    }
  }
  return out;
}

}  // namespace

TEST_CASE("no module includes a module above it in docs/architecture.md's order", "[layering]") {
  const fs::path root = source_root();
  const std::string doc = read(root / "docs" / "architecture.md");
  const auto order = documented_order(doc);
  // Every module folder is in the document, and nothing else is.
  std::set<std::string> folders;
  for (const auto& e : fs::directory_iterator(root / "src")) {
    if (e.is_directory()) folders.insert(e.path().filename().string());
  }
  CHECK(std::set<std::string>(order.begin(), order.end()) == folders);
  std::map<std::string, std::size_t> rank;
  for (std::size_t i = 0; i < order.size(); ++i) rank[order[i]] = i;
  for (const auto& i : includes(root, order)) {
    INFO(i.where << ": " << i.from << " includes " << i.to);
    REQUIRE(rank.count(i.to) == 1);
    CHECK(rank[i.to] < rank[i.from]);
  }
}

TEST_CASE("docs/architecture.md's module graph is the one the #include lines draw", "[layering]") {
  const fs::path root = source_root();
  const std::string doc = read(root / "docs" / "architecture.md");
  const auto order = documented_order(doc);
  std::map<std::string, std::set<std::string>> actual;
  for (const auto& m : order) actual[m];
  for (const auto& i : includes(root, order)) actual[i.from].insert(i.to);
  auto drawn = documented_graph(doc);
  for (const auto& m : order) {
    INFO("module " << m);
    REQUIRE(drawn.count(m) == 1);
    std::string missing, extra;
    for (const auto& x : actual[m]) {
      if (!drawn[m].count(x)) missing += " " + x;
    }
    for (const auto& x : drawn[m]) {
      if (!actual[m].count(x)) extra += " " + x;
    }
    INFO("includes but the document does not say:" << missing << "; the document says but does not include:" << extra);
    CHECK(actual[m] == drawn[m]);
  }
}

TEST_CASE("the thread door: work leaves the loop thread only through loop::run_in_pool and the spool's fdatasync",
          "[layering][threads]") {
  const fs::path root = source_root();
  // A call that starts a thread, and the files allowed to make it (none: never).
  struct Door {
    std::regex call;
    std::set<std::string> allowed;
  };
  const std::vector<Door> doors = {
      {std::regex(R"(\bstd::(j?thread|async)\b)"), {}},
      {std::regex(R"(\b(pthread_create|uv_thread_create)\s*\()"), {}},
      {std::regex(R"(\buv_queue_work\s*\()"), {"src/loop/work.cpp"}},
      // Asynchronous file-system requests run on libuv's pool ("uv_fs_t"
      // and uv_fs_req_cleanup are their bookkeeping).
      {std::regex(R"(\buv_fs_(?!req_cleanup\b|t\b)[a-z_]+\s*\()"), {"src/audit/spool_recorder.cpp"}},
  };
  std::size_t files = 0, allowed_seen = 0;
  for (const fs::path& dir : {root / "src", root / "include", root / "agent"}) {
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
      auto ext = e.path().extension();
      if (ext != ".cpp" && ext != ".hpp") continue;
      ++files;
      const std::string rel = fs::relative(e.path(), root).string();
      std::istringstream in(read(e.path()));
      int n = 0;
      for (std::string line; std::getline(in, line);) {
        ++n;
        auto comment = line.find("//");
        std::string code = comment == std::string::npos ? line : line.substr(0, comment);
        for (const auto& d : doors) {
          if (!std::regex_search(code, d.call)) continue;
          INFO(rel << ":" << n << ": " << line);
          CHECK(d.allowed.count(rel) == 1);
          allowed_seen += d.allowed.count(rel);
        }
      }
    }
  }
  CHECK(files > 100);
  CHECK(allowed_seen == 2);  // the two doors exist where the document says
}
