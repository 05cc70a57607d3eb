// Added-token splitting (added_tokens.hpp).
#include "tokenize/added_tokens.hpp"

#include <algorithm>

#include "tokenize/utf8.hpp"

namespace hashmem::tokenize {

AddedTokens::AddedTokens(const std::vector<HfAddedToken>& tokens) {
  // One entry per content, the last one named (JavaScript's Map and trie both keep the last).
  std::unordered_map<std::string, std::size_t> last;
  for (std::size_t k = 0; k < tokens.size(); ++k) {
    if (!tokens[k].content.empty()) last[tokens[k].content] = k;  // an empty content never matches
  }
  for (std::size_t k = 0; k < tokens.size(); ++k) {
    const auto it = last.find(tokens[k].content);
    if (it != last.end() && it->second == k) tokens_.push_back(tokens[k]);
  }
  index_.reserve(tokens_.size());
  trie_.emplace_back();
  for (std::size_t t = 0; t < tokens_.size(); ++t) {
    const std::string& content = tokens_[t].content;
    index_.emplace(content, t);
    first_byte_[static_cast<unsigned char>(content[0])] = true;
    std::size_t node = 0;
    for (unsigned char byte : content) {
      auto& children = trie_[node].children;
      auto at = std::lower_bound(children.begin(), children.end(), std::make_pair(byte, std::int32_t{-1}));
      if (at == children.end() || at->first != byte) {
        at = children.insert(at, {byte, static_cast<std::int32_t>(trie_.size())});
        const auto child = static_cast<std::size_t>(at->second);
        trie_.emplace_back();  // (invalidates `children`, not `child`)
        node = child;
      } else {
        node = static_cast<std::size_t>(at->second);
      }
    }
    trie_[node].token = static_cast<std::int32_t>(t);
  }
}

std::size_t AddedTokens::longest_match(std::string_view text, std::size_t i) const {
  std::size_t node = 0, longest = 0;
  for (std::size_t j = i; j < text.size(); ++j) {
    const auto byte = static_cast<unsigned char>(text[j]);
    const auto& children = trie_[node].children;
    const auto at = std::lower_bound(children.begin(), children.end(), std::make_pair(byte, std::int32_t{-1}));
    if (at == children.end() || at->first != byte) break;
    node = static_cast<std::size_t>(at->second);
    if (trie_[node].token >= 0) longest = j + 1 - i;
  }
  return longest;
}

const HfAddedToken* AddedTokens::by_content(std::string_view text) const {
  const auto it = index_.find(text);
  return it == index_.end() ? nullptr : &tokens_[it->second];
}

void AddedTokens::split(std::string_view text, std::vector<Section>& out) const {
  out.clear();
  if (tokens_.empty()) {
    if (!text.empty()) out.push_back({text, -1});
    return;
  }
  std::size_t start = 0, i = 0;
  while (i < text.size()) {
    const std::size_t length = first_byte_[static_cast<unsigned char>(text[i])] ? longest_match(text, i) : 0;
    if (length == 0) {
      i += utf8_length(static_cast<unsigned char>(text[i]));
      continue;
    }
    if (i > start) out.push_back({text.substr(start, i - start), -1});
    out.push_back({text.substr(i, length), -1});
    i += length;
    start = i;
  }
  if (start < text.size()) out.push_back({text.substr(start), -1});

  // lstrip / rstrip, in order, then which sections are tokens (by content, as transformers.js looks them up).
  for (std::size_t k = 0; k < out.size(); ++k) {
    const HfAddedToken* token = by_content(out[k].text);
    if (!token) continue;
    if (token->lstrip && k > 0) out[k - 1].text = trim_js_whitespace_end(out[k - 1].text);
    if (token->rstrip && k + 1 < out.size()) out[k + 1].text = trim_js_whitespace_start(out[k + 1].text);
  }
  std::size_t kept = 0;
  for (const Section& section : out) {
    if (section.text.empty()) continue;
    const HfAddedToken* token = by_content(section.text);
    out[kept++] = {section.text, token ? token->id : -1};
  }
  out.resize(kept);
}

}  // namespace hashmem::tokenize
