// docs/api.md's metric table is in step with the metric table the agent
// exposes (src/api/metrics.toml, generated into metric_table.hpp).
#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "metric_table.hpp"

namespace {

std::string read_doc(const char* relative) {
  const char* root = std::getenv("CHITTY_SOURCE_ROOT");
  REQUIRE(root != nullptr);  // set by meson test; run by hand with CHITTY_SOURCE_ROOT=<repo>
  std::ifstream in(std::string(root) + "/" + relative);
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string row(const chitty::api::MetricInfo& m) {
  std::string labels;
  for (char c : m.labels) labels += c == ',' ? std::string(", ") : std::string(1, c);
  return "| `" + std::string(m.name) + "` | " + std::string(m.type) + " | " + (labels.empty() ? "—" : labels) + " | " +
         std::string(m.help) + " |";
}

}  // namespace

TEST_CASE("docs/api.md lists every metric with its type, labels and help, and no other", "[api][metrics][docs]") {
  const std::string doc = read_doc("docs/api.md");
  std::set<std::string> declared;
  for (const auto& m : chitty::api::kMetrics) {
    INFO(m.name);
    CHECK(doc.find(row(m) + "\n") != std::string::npos);
    declared.insert(std::string(m.name));
  }
  std::istringstream lines(doc);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("| `chitty_", 0) != 0) continue;
    auto end = line.find('`', 3);
    REQUIRE(end != std::string::npos);
    INFO(line);
    CHECK(declared.count(line.substr(3, end - 3)) == 1);
  }
}

TEST_CASE("metric names are unique and each enum value indexes its own row", "[api][metrics]") {
  std::set<std::string_view> names;
  for (const auto& m : chitty::api::kMetrics) CHECK(names.insert(m.name).second);
  CHECK(chitty::api::info(chitty::api::Metric::requests_total).name == "chitty_requests_total");
  CHECK(chitty::api::info(chitty::api::Metric::protocol_errors_total).name == "chitty_protocol_errors_total");
}
