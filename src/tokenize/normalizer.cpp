// tokenizer.json normalizers: Unicode normal forms through ICU (normalizer.hpp).
#include "tokenize/normalizer.hpp"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>

#include "hashmem/error.hpp"

namespace hashmem::tokenize {

Normalizer::Normalizer(const nlohmann::json* config, const std::string& origin) {
  if (config && !config->is_null()) add(*config, origin + ": normalizer");
}

void Normalizer::add(const nlohmann::json& config, const std::string& where) {
  const auto type = config.is_object() ? config.find("type") : config.end();
  if (!config.is_object() || type == config.end() || !type->is_string()) {
    throw Error(where + " is not an object with a string \"type\"");
  }
  const std::string& name = type->get_ref<const std::string&>();
  if (name == "Sequence") {
    const auto parts = config.find("normalizers");
    if (parts == config.end() || !parts->is_array()) throw Error(where + ".normalizers is not a list");
    for (std::size_t k = 0; k < parts->size(); ++k) add((*parts)[k], where + ".normalizers[" + std::to_string(k) + "]");
    return;
  }
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* form = name == "NFC"    ? icu::Normalizer2::getNFCInstance(status)
                                 : name == "NFD"  ? icu::Normalizer2::getNFDInstance(status)
                                 : name == "NFKC" ? icu::Normalizer2::getNFKCInstance(status)
                                 : name == "NFKD" ? icu::Normalizer2::getNFKDInstance(status)
                                                  : nullptr;
  if (!form && U_SUCCESS(status)) {
    throw Error(where + ".type is \"" + name + "\": not supported (supported: Sequence, NFC, NFD, NFKC, NFKD)");
  }
  if (U_FAILURE(status)) throw Error(where + ": ICU has no " + name + " instance: " + u_errorName(status));
  steps_.push_back(form);
}

std::string Normalizer::apply(std::string_view text) const {
  std::string out(text);
  for (const void* step : steps_) {
    const auto* form = static_cast<const icu::Normalizer2*>(step);
    UErrorCode status = U_ZERO_ERROR;
    if (form->isNormalizedUTF8(out, status) && U_SUCCESS(status)) continue;
    std::string next;
    icu::StringByteSink<std::string> sink(&next);
    status = U_ZERO_ERROR;
    form->normalizeUTF8(0, out, sink, nullptr, status);
    if (U_FAILURE(status)) throw Error(std::string("ICU normalisation failed: ") + u_errorName(status));
    out.swap(next);
  }
  return out;
}

}  // namespace hashmem::tokenize
