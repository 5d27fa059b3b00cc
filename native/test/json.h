// A small JSON reader for the test vectors (objects, arrays, strings without
// \u escapes beyond ASCII, numbers, true/false/null). Throws on bad input.
#pragma once

#include <cstdlib>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace json {

struct Value {
  enum Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = kNull;
  bool b = false;
  double n = 0;
  std::string s;
  std::vector<Value> a;
  std::map<std::string, Value> o;

  bool has(const std::string& k) const { return kind == kObject && o.count(k); }
  const Value& operator[](const std::string& k) const {
    auto it = o.find(k);
    if (kind != kObject || it == o.end()) throw std::runtime_error("missing key " + k);
    return it->second;
  }
  long num() const {
    if (kind != kNumber) throw std::runtime_error("not a number");
    return static_cast<long>(n);
  }
  const std::string& str() const {
    if (kind != kString) throw std::runtime_error("not a string");
    return s;
  }
};

class Parser {
 public:
  explicit Parser(const std::string& text) : t_(text) {}
  Value parse() {
    Value v = value();
    ws();
    if (i_ != t_.size()) fail("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void fail(const char* what) { throw std::runtime_error(std::string("JSON: ") + what + " at " + std::to_string(i_)); }
  void ws() {
    while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\n' || t_[i_] == '\t' || t_[i_] == '\r')) i_++;
  }
  char peek() {
    ws();
    if (i_ >= t_.size()) fail("unexpected end");
    return t_[i_];
  }
  void expect(char c) {
    if (peek() != c) fail("unexpected character");
    i_++;
  }
  std::string string() {
    expect('"');
    std::string out;
    while (true) {
      if (i_ >= t_.size()) fail("unterminated string");
      char c = t_[i_++];
      if (c == '"') return out;
      if (c == '\\') {
        if (i_ >= t_.size()) fail("bad escape");
        char e = t_[i_++];
        switch (e) {
          case 'n': out += '\n'; break;
          case 't': out += '\t'; break;
          case 'u': out += static_cast<char>(std::strtol(t_.substr(i_, 4).c_str(), nullptr, 16)); i_ += 4; break;
          default: out += e;
        }
      } else {
        out += c;
      }
    }
  }
  Value value() {
    Value v;
    const char c = peek();
    if (c == '{') {
      v.kind = Value::kObject;
      i_++;
      if (peek() == '}') return i_++, v;
      while (true) {
        std::string k = string();
        expect(':');
        v.o[k] = value();
        if (peek() == ',') { i_++; continue; }
        expect('}');
        return v;
      }
    }
    if (c == '[') {
      v.kind = Value::kArray;
      i_++;
      if (peek() == ']') return i_++, v;
      while (true) {
        v.a.push_back(value());
        if (peek() == ',') { i_++; continue; }
        expect(']');
        return v;
      }
    }
    if (c == '"') {
      v.kind = Value::kString;
      v.s = string();
      return v;
    }
    if (t_.compare(i_, 4, "true") == 0) { i_ += 4; v.kind = Value::kBool; v.b = true; return v; }
    if (t_.compare(i_, 5, "false") == 0) { i_ += 5; v.kind = Value::kBool; return v; }
    if (t_.compare(i_, 4, "null") == 0) { i_ += 4; return v; }
    char* end = nullptr;
    v.n = std::strtod(t_.c_str() + i_, &end);
    if (end == t_.c_str() + i_) fail("bad value");
    v.kind = Value::kNumber;
    i_ = static_cast<size_t>(end - t_.c_str());
    return v;
  }

  const std::string& t_;
  size_t i_ = 0;
};

inline Value parse(const std::string& text) { return Parser(text).parse(); }

}  // namespace json
