# Proves the R launcher speaks protocol 2.1 (docs/protocol.md, section 8) byte for byte: reproduces the registration
# of docs/protocol-vectors-2.1.json, opens its claim, and refuses what every standby must refuse (another pool,
# another claim key, another registration's nonce, a replayed or second claim, another standby's claim).
#
#   Rscript launchers/r/tests/test_standby.R [path/to/protocol-vectors-2.1.json]
#
# Exits non-zero on any failure; tests/launchers/test_r_launcher.py runs it.

local({
  args <- commandArgs(trailingOnly = FALSE)
  script <- sub("^--file=", "", args[startsWith(args, "--file=")][1L])
  here <- dirname(normalizePath(script))
  for (name in c("kf_protocol.R", "kf_protocol_standby.R", "kf_config.R")) source(file.path(here, "..", name), local = FALSE)
  source(file.path(here, "kf_check.R"), local = FALSE)
  rest <- commandArgs(trailingOnly = TRUE)
  vectors_path <<- if (length(rest) >= 1L) rest[[1L]] else file.path(here, "..", "..", "..", "docs", "protocol-vectors-2.1.json")
})

hex <- function(text) as.raw(strtoi(substring(text, seq(1L, nchar(text), 2L), seq(2L, nchar(text), 2L)), 16L))

v <- jsonlite::read_json(vectors_path, simplifyVector = FALSE)
check(identical(v$protocol, "kernelfleet") && identical(v$version, 2L) && identical(v$minor, 1L),
      "vectors file is protocol 2.1")

# ---- registration: byte-for-byte reproduction from the fixed keys, iv, OAEP seed, claim key and nonce
r <- v$registration
line <- kf_seal_registration(r$standby_id, r$pool, r$token, hex(r$claim_key_hex), hex(r$nonce_hex), v$public_key,
                             pid = r$pid, launcher = r$launcher, aes_key = hex(r$aes_key_hex),
                             mac_key = hex(r$mac_key_hex), iv = hex(r$iv_hex), oaep_seed = hex(r$oaep_seed_hex))
check(identical(line, r$line), "registration line reproduced byte for byte")
if (!identical(line, r$line)) cat("  expected:", r$line, "\n  got:     ", line, "\n")

# A registration with fresh randomness opens with the test private key to the same fields.
private <- as.list(openssl::read_key(v$server_private_key_pem))$data
fresh <- kf_parse_json_object(kf_seal_registration(r$standby_id, r$pool, r$token, hex(r$claim_key_hex),
                                                   hex(r$nonce_hex), v$public_key, pid = 99L, launcher = "r/test"))
em <- kf_left_pad(kf_strip_zeros(as.raw(openssl::bignum_mod_exp(
  openssl::bignum(kf_b64decode(fresh$key)), private$d, private$n))), 256L)
keys <- tail(xor(em[34:256], kf_mgf1_sha256(xor(em[2:33], kf_mgf1_sha256(em[34:256], 32L)), 223L)), 64L)
body <- kf_parse_json_object(rawToChar(openssl::aes_cbc_decrypt(kf_b64decode(fresh$ciphertext), key = keys[1:32],
                                                                iv = kf_b64decode(fresh$iv))))
check(identical(fresh$minor, 1L) && identical(fresh$standby_id, r$standby_id), "fresh registration envelope")
check(identical(body$launch_token, r$token) && identical(body$pool, r$pool) && identical(body$pid, 99L) &&
        identical(kf_b64decode(body$claim_key), hex(r$claim_key_hex)), "fresh registration decrypts to its fields")
check(identical(kf_b64decode(fresh$mac), kf_report_mac(keys[33:64], r$standby_id, kf_b64decode(fresh$key),
                                                       kf_b64decode(fresh$iv), kf_b64decode(fresh$ciphertext),
                                                       KF_STANDBY_MAC_LABEL)),
      "fresh registration MAC verifies under the standby label")
check(inherits(tryCatch(kf_seal_registration("bad id", r$pool, r$token, hex(r$claim_key_hex), hex(r$nonce_hex),
                                             v$public_key), error = function(e) e), "error"),
      "registration refuses an invalid standby id")
check(inherits(tryCatch(kf_seal_registration(r$standby_id, r$pool, r$token, hex(r$nonce_hex), hex(r$nonce_hex),
                                             v$public_key), error = function(e) e), "error"),
      "registration refuses a claim key that is not 64 bytes")

# ---- claim: opened by the standby it was made for, exactly once
cl <- v$claim
verifier <- function(standby_id = r$standby_id, pool = r$pool, key = hex(r$claim_key_hex), nonce = hex(r$nonce_hex)) {
  kf_claim_verifier(standby_id, pool, key, nonce)
}
open <- verifier()
verdict <- open(cl$line)
check(isTRUE(verdict$ok), "claim line verifies and decrypts")
got <- verdict$claim
check(identical(got$kernel_id, cl$kernel_id) && identical(got$launch_token, cl$launch_token) &&
        identical(got$working_dir, cl$working_dir) && identical(got$port_range, cl$port_range), "claim fields")
check(identical(as.list(got$env), cl$env), "claim environment, in order")
replay <- open(cl$line)
check(!isTRUE(replay$ok) && identical(replay$error, "this standby was claimed already"), "replayed claim refused")
check(identical(kf_claim_answer(), '{"ok":true}') &&
        identical(kf_claim_answer(replay$error), '{"ok":false,"error":"this standby was claimed already"}'),
      "claim answers")

for (bad in v$reject_claims) {
  fresh_verifier <- verifier()
  check(!isTRUE(fresh_verifier(bad$line)$ok), paste("refused:", bad$why))
  check(isTRUE(fresh_verifier(cl$line)$ok), paste("a refused claim does not use up the standby:", bad$why))
}
check(!isTRUE(verifier(standby_id = "standby-another")(cl$line)$ok), "refused: claim for another standby")
check(!isTRUE(verifier(pool = "another-pool")(cl$line)$ok), "refused: claim to a standby of another pool")

# A second, different claim made with the right key after the first: still refused (one claim per standby, ever).
seal_claim <- function(plain, key = hex(r$claim_key_hex), iv = hex(cl$iv_hex), pool = r$pool, sid = r$standby_id) {
  ct <- as.vector(openssl::aes_cbc_encrypt(charToRaw(plain), key = key[1:32], iv = iv))
  paste0('{"protocol":"kernelfleet","version":2,"minor":1,"pool":', kf_json_string(pool), ',"standby_id":',
         kf_json_string(sid), ',"iv":"', kf_b64encode(iv), '","ciphertext":"', kf_b64encode(ct), '","mac":"',
         kf_b64encode(kf_claim_mac(key[33:64], pool, sid, hex(r$nonce_hex), iv, ct)), '"}')
}
second <- seal_claim('{"kernel_id":"k2","launch_token":"t","env":{},"working_dir":null,"port_range":"0..0"}',
                     iv = as.raw(1:16))
check(isTRUE(verifier()(second)$ok), "a claim sealed here opens (the sealing matches the vectors' construction)")
check(length(verifier()(second)$claim$env) == 0L && is.null(verifier()(second)$claim$working_dir),
      "empty env and null working_dir")
check(!isTRUE(open(second)$ok), "second claim (fresh iv, right key) refused after the first")

# Authentic claims whose content is refused: the standby is then used up too (never acted on).
contents <- list(
  "env sets LAUNCH_TOKEN" = '{"kernel_id":"k","launch_token":"t","env":{"LAUNCH_TOKEN":"x"},"working_dir":null,"port_range":"0..0"}',
  "env value not a string" = '{"kernel_id":"k","launch_token":"t","env":{"A":1},"working_dir":null,"port_range":"0..0"}',
  "env name with =" = '{"kernel_id":"k","launch_token":"t","env":{"A=B":"x"},"working_dir":null,"port_range":"0..0"}',
  "relative working_dir" = '{"kernel_id":"k","launch_token":"t","env":{},"working_dir":"work","port_range":"0..0"}',
  "invalid kernel id" = '{"kernel_id":"k\\n","launch_token":"t","env":{},"working_dir":null,"port_range":"0..0"}',
  "no launch token" = '{"kernel_id":"k","env":{},"working_dir":null,"port_range":"0..0"}',
  "not JSON" = "kernel please"
)
for (why in names(contents)) {
  once <- verifier()
  check(!isTRUE(once(seal_claim(contents[[why]]))$ok), paste("refused content:", why))
  check(!isTRUE(once(cl$line)$ok), paste("standby used up by a refused authentic claim:", why))
}
hostile <- list(
  "claim of protocol 2.0" = sub('"minor":1', '"minor":0', cl$line, fixed = TRUE),
  "tampered ciphertext" = sub('"ciphertext":"h', '"ciphertext":"i', cl$line, fixed = TRUE),
  "over-long line" = paste0(substr(cl$line, 1L, nchar(cl$line) - 1L), ',"pad":"', strrep("x", KF_MAX_CLAIM_BYTES), '"}'),
  "JSON array" = "[1]"
)
for (why in names(hostile)) {
  check(!isTRUE(verifier()(hostile[[why]])$ok), paste("refused:", why))
}

kf_finish()
