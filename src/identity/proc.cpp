#include "proc.hpp"

#include "chitty/base/text.hpp"

namespace chitty::identity {

std::optional<std::uint64_t> stat_start_time(std::string_view stat) {
  auto close = stat.rfind(')');
  if (close == std::string_view::npos) return std::nullopt;
  std::string_view rest = stat.substr(close + 1);
  // After ')' come fields 3.. separated by single spaces; we want field 22.
  int field = 2;
  while (!rest.empty()) {
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    auto end = rest.find(' ');
    std::string_view token = rest.substr(0, end);
    ++field;
    if (field == 22) {
      std::uint64_t v = 0;
      if (!parse_u64(token, v)) return std::nullopt;
      return v;
    }
    if (end == std::string_view::npos) break;
    rest.remove_prefix(end);
  }
  return std::nullopt;
}

std::vector<pid_t> status_nspids(std::string_view status) {
  std::vector<pid_t> out;
  auto pos = status.find("\nNSpid:");
  if (pos == std::string_view::npos) {
    if (status.rfind("NSpid:", 0) != 0) return out;
    pos = 0;
  } else {
    pos += 1;
  }
  std::string_view line = status.substr(pos + 6);
  line = line.substr(0, line.find('\n'));
  while (!line.empty()) {
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    auto end = line.find_first_of(" \t");
    std::string_view token = line.substr(0, end);
    std::uint64_t v = 0;
    if (!token.empty()) {
      if (!parse_u64(token, v)) return {};
      out.push_back(static_cast<pid_t>(v));
    }
    if (end == std::string_view::npos) break;
    line.remove_prefix(end);
  }
  return out;
}

std::optional<long> fdinfo_pid(std::string_view fdinfo) {
  std::size_t pos = 0;
  while (pos < fdinfo.size()) {
    auto end = fdinfo.find('\n', pos);
    std::string_view line = fdinfo.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    if (line.rfind("Pid:", 0) == 0) {
      std::string_view v = line.substr(4);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      bool negative = !v.empty() && v.front() == '-';
      if (negative) v.remove_prefix(1);
      std::uint64_t n = 0;
      if (!parse_u64(v, n) || n > 0x7FFFFFFF) return std::nullopt;
      return negative ? -static_cast<long>(n) : static_cast<long>(n);
    }
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return std::nullopt;
}

std::optional<std::uint32_t> status_effective_id(std::string_view status, std::string_view line_name) {
  std::size_t pos = 0;
  while (pos < status.size()) {
    auto end = status.find('\n', pos);
    std::string_view line = status.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    if (line.rfind(line_name, 0) == 0) {
      std::string_view rest = line.substr(line_name.size());
      // real, then effective
      for (int field = 0; field < 2; ++field) {
        while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) rest.remove_prefix(1);
        auto stop = rest.find_first_of(" \t");
        std::string_view token = rest.substr(0, stop);
        if (field == 1) {
          std::uint64_t v = 0;
          if (!parse_u64(token, v) || v > 0xFFFFFFFFULL) return std::nullopt;
          return static_cast<std::uint32_t>(v);
        }
        if (stop == std::string_view::npos) return std::nullopt;
        rest.remove_prefix(stop);
      }
    }
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return std::nullopt;
}

}  // namespace chitty::identity
