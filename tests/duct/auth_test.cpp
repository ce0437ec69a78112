// The authkey handshake against Python's captured messages, and the sans-I/O pieces on their own.
#include <catch2/catch.hpp>

#include <duct/auth.hpp>

#include "support.hpp"

namespace {

std::string text_of(const duct::buffer& b) { return std::string(b.view()); }

}  // namespace

TEST_CASE("captured handshake digests recompute from the recorded key and challenge", "[auth][vectors]") {
  int responses = 0, byte_identical = 0;
  for (const auto& line : test::load_vectors("multiprocessing.jsonl")) {
    if (line["type"] != "handshake_message" || line["kind"] != "response") continue;
    ++responses;
    CAPTURE(line["case"].get<std::string>(), line["leg"].get<int>());
    duct::buffer responder_key = test::unhex(line["hmac_key_hex"].get<std::string>());
    duct::buffer verifier_key = test::unhex(line["verifier_key_hex"].get<std::string>());
    duct::buffer body = test::unhex(line["hmac_msg_hex"].get<std::string>());
    duct::buffer payload = test::unhex(line["payload_hex"].get<std::string>());

    CHECK(duct::auth::verify_response(responder_key.view(), body.span(), payload.span()));
    CHECK(duct::auth::verify_response(verifier_key.view(), body.span(), payload.span()) ==
          line["matches_verifier_key"].get<bool>());

    // We answer as Python 3.12 does: identical bytes whenever the responder was 3.12+ or the challenge was legacy.
    bool legacy_challenge = body.size() == 20;
    if (!line["response_prefix"].get<std::string>().empty() || legacy_challenge) {
      CHECK(test::hex(duct::auth::make_response(responder_key.view(), body.span())) == test::hex(payload));
      ++byte_identical;
    }
  }
  CHECK(responses >= 10);
  CHECK(byte_identical >= 8);
}

TEST_CASE("captured challenges and verdicts have the shapes we produce", "[auth][vectors]") {
  int challenges = 0;
  for (const auto& line : test::load_vectors("multiprocessing.jsonl")) {
    if (line["type"] != "handshake_message") continue;
    duct::buffer payload = test::unhex(line["payload_hex"].get<std::string>());
    const std::string kind = line["kind"];
    if (kind == "welcome") CHECK(payload.view() == duct::auth::welcome);
    if (kind == "failure") CHECK(payload.view() == duct::auth::failure);
    if (kind == "challenge" && line["challenge_digest_prefix"] == "{sha256}") {
      ++challenges;
      CHECK(payload.view().starts_with(std::string(duct::auth::challenge_tag) + "{sha256}"));
      duct::buffer ours = duct::auth::make_challenge_body("sha256");
      CHECK(std::string(duct::auth::challenge_tag).size() + ours.size() == payload.size());
      CHECK(line["random_len"].get<std::size_t>() == 40);
    }
  }
  CHECK(challenges >= 2);
}

TEST_CASE("our challenges are fresh and our answers verify", "[auth]") {
  duct::buffer a = duct::auth::make_challenge_body();
  duct::buffer b = duct::auth::make_challenge_body();
  CHECK(a.size() == 48);
  CHECK(a.view().starts_with("{sha256}"));
  CHECK(a != b);
  for (const char* digest : {"md5", "sha256", "sha384", "sha3_256", "sha3_384"}) {
    CAPTURE(digest);
    duct::buffer body = duct::auth::make_challenge_body(digest);
    duct::buffer response = duct::auth::make_response("key", body.span());
    CHECK(text_of(response).starts_with(std::string("{") + digest + "}"));
    CHECK(duct::auth::verify_response("key", body.span(), response.span()));
    CHECK_FALSE(duct::auth::verify_response("other", body.span(), response.span()));
  }
}

TEST_CASE("malformed challenges and responses are refused", "[auth]") {
  duct::buffer short_body(std::string_view("{sha256}abc"));
  CHECK_THROWS_WITH(duct::auth::make_response("k", short_body.span()), Catch::Contains("too short"));
  duct::buffer unknown(std::string_view("{whirlpool}0123456789012345678901234567890123456789"));
  CHECK_THROWS_AS(duct::auth::make_response("k", unknown.span()), duct::auth_error);
  CHECK_THROWS_AS(duct::auth::make_challenge_body("crc32"), duct::auth_error);
  duct::buffer body = duct::auth::make_challenge_body();
  CHECK_FALSE(duct::auth::verify_response("k", body.span(), duct::buffer(std::string_view("{sha256}")).span()));
  CHECK_FALSE(duct::auth::verify_response("k", body.span(), duct::buffer().span()));
}
