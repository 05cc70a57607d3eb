// JavaScript regular expressions (the dialect transformers.js compiles a tokenizer.json's Split patterns in, with
// the flags "gu") rewritten into PCRE2 syntax with the same meaning, so that PCRE2 finds the matches JavaScript
// would. Only the syntax is rewritten; PCRE2 does all the matching.
//
// Where the two dialects differ and what the rewrite does (PCRE2 compiled with UTF | UCP | DOLLAR_ENDONLY |
// MATCH_UNSET_BACKREF, which regex.cpp sets):
//   \s \S       JavaScript's fixed whitespace set (utf8.hpp), not PCRE2's (which adds U+0085 and U+180E and lacks
//               U+FEFF): written out as code point ranges, inside and outside classes
//   \d \D \w \W ASCII in JavaScript: [0-9] and [0-9A-Za-z_] and their complements, written out
//   \b \B       word boundaries over the ASCII \w: lookarounds
//   .           any code point but \n \r U+2028 U+2029
//   \v          U+000B (PCRE2: any vertical space); [\b] is U+0008
//   \uXXXX \u{X} \x{X} (surrogate pairs combined; a lone surrogate cannot match UTF-8 text and is refused)
//   \0          U+0000
//   [] [^]      the empty class (never matches) and any code point
//   [ in a class  a literal (PCRE2 would read [:alpha:] as a POSIX class)
//   \p{gc=X} \p{General_Category=X} \p{Script=X} \p{sc=X} \p{Script_Extensions=X} \p{scx=X}: PCRE2's forms
// Everything else (groups, lookarounds, quantifiers, \p{L}-style names, backreferences, \xHH, \cX, \t \n \r \f,
// escaped punctuation) is the same in both and copied. Escapes that JavaScript refuses under the u flag (\A, \z,
// \h, \R, ...) are refused here too. Unicode property tables differ by version (PCRE2 10.42: Unicode 14; node 20:
// Unicode 15.1), so characters assigned in Unicode 15 may be classified differently.
//
// Threads: pure functions. Errors: hashmem::Error whose message names the construct; callers prefix the origin.
#pragma once

#include <string>
#include <string_view>

namespace hashmem::tokenize {

// The textual fixes transformers.js's createPattern applies to a Regex before compiling it: a backslash before
// '#', '&' or '~' removed, and two known patterns (a case-insensitive group of English contractions, Bloom's
// split pattern) replaced by JavaScript-compatible equivalents.
std::string transformers_js_pattern_fixes(std::string_view pattern);

// The PCRE2 pattern that matches what `js_pattern` matches in JavaScript with the u flag.
// Throws Error for syntax JavaScript refuses or that has no PCRE2 equivalent here (a trailing backslash, a lone
// surrogate escape, an unknown escape, an unclosed class or \u{...}).
std::string js_regex_to_pcre2(std::string_view js_pattern);

// A PCRE2 pattern matching exactly the string `literal` (a tokenizer.json {"String": ...} pattern).
std::string pcre2_literal(std::string_view literal);

}  // namespace hashmem::tokenize
