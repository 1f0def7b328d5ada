# Proves the R launcher speaks protocol v2 byte for byte: reproduces docs/protocol-vectors.json.
#
#   Rscript launchers/r/tests/test_vectors.R [path/to/protocol-vectors.json]
#
# Exits non-zero on any failure. The vectors path defaults to the repository's docs/ copy.

local({
  args <- commandArgs(trailingOnly = FALSE)
  script <- sub("^--file=", "", args[startsWith(args, "--file=")][1L])
  here <- dirname(normalizePath(script))
  source(file.path(here, "..", "kf_protocol.R"), local = FALSE)
  source(file.path(here, "..", "kf_process.R"), local = FALSE)
  source(file.path(here, "kf_check.R"), local = FALSE)
  rest <- commandArgs(trailingOnly = TRUE)
  vectors_path <<- if (length(rest) >= 1L) rest[[1L]] else file.path(here, "..", "..", "..", "docs", "protocol-vectors.json")
})

hex <- function(text) as.raw(strtoi(substring(text, seq(1L, nchar(text), 2L), seq(2L, nchar(text), 2L)), 16L))

v <- jsonlite::read_json(vectors_path, simplifyVector = FALSE)
check(identical(v$protocol, "kernelfleet") && identical(v$version, 2L), "vectors file is protocol v2")

# ---- report: byte-for-byte reproduction from the fixed keys, iv, OAEP seed and plaintext
r <- v$report
line <- kf_seal_report(
  r$plaintext, r$kernel_id, v$public_key,
  aes_key = hex(r$aes_key_hex), mac_key = hex(r$mac_key_hex), iv = hex(r$iv_hex), oaep_seed = hex(r$oaep_seed_hex)
)
check(identical(line, r$line), "report line reproduced byte for byte")
if (!identical(line, r$line)) {
  cat("  expected:", r$line, "\n  got:     ", line, "\n")
}

# The OAEP block on its own, so a failure points at the right layer.
key <- kf_read_public_key(v$public_key)
check(key$k == 256L, "public key is 2048-bit RSA")
wrapped <- kf_oaep_encrypt(key, c(hex(r$aes_key_hex), hex(r$mac_key_hex)), seed = hex(r$oaep_seed_hex))
expected_envelope <- kf_parse_json_object(r$line)
check(identical(kf_b64encode(wrapped), expected_envelope$key), "RSA-OAEP(SHA-256, MGF1-SHA-256) key block")

# Decrypting with the test private key (raw RSA + OAEP decode) recovers aes_key || mac_key: the
# encoder is not merely self-consistent with the vector but a real OAEP encoding.
private <- as.list(openssl::read_key(v$server_private_key_pem))$data
em <- kf_left_pad(kf_strip_zeros(as.raw(openssl::bignum_mod_exp(openssl::bignum(wrapped), private$d, private$n))), 256L)
seed <- xor(em[2:33], kf_mgf1_sha256(em[34:256], 32L))
db <- xor(em[34:256], kf_mgf1_sha256(seed, 223L))
check(em[1L] == as.raw(0L) && identical(db[1:32], kf_sha256(raw(0))) && identical(seed, hex(r$oaep_seed_hex)),
      "OAEP block decodes with the private key (lHash, seed)")
check(identical(tail(db, 64L), c(hex(r$aes_key_hex), hex(r$mac_key_hex))), "OAEP block carries aes_key || mac_key")

# A sealed report with fresh randomness still decrypts to the plaintext (AES-CBC + PKCS#7 round trip).
fresh <- kf_parse_json_object(kf_seal_report(r$plaintext, r$kernel_id, v$public_key))
fresh_em <- kf_left_pad(kf_strip_zeros(as.raw(openssl::bignum_mod_exp(
  openssl::bignum(kf_b64decode(fresh$key)), private$d, private$n))), 256L)
fresh_seed <- xor(fresh_em[2:33], kf_mgf1_sha256(fresh_em[34:256], 32L))
fresh_keys <- tail(xor(fresh_em[34:256], kf_mgf1_sha256(fresh_seed, 223L)), 64L)
fresh_plain <- openssl::aes_cbc_decrypt(kf_b64decode(fresh$ciphertext), key = fresh_keys[1:32], iv = kf_b64decode(fresh$iv))
check(identical(rawToChar(fresh_plain), r$plaintext), "fresh report decrypts to the plaintext")
check(identical(kf_b64decode(fresh$mac),
                kf_report_mac(fresh_keys[33:64], r$kernel_id, kf_b64decode(fresh$key), kf_b64decode(fresh$iv),
                              kf_b64decode(fresh$ciphertext))),
      "fresh report MAC verifies")
check(!identical(fresh$key, expected_envelope$key) && !identical(fresh$iv, expected_envelope$iv),
      "fresh report uses fresh randomness")

# ---- comm: greeting, request MACs, the reject line
cm <- v$comm
comm_key <- hex(cm$comm_key_hex)
nonce <- hex(cm$nonce_hex)
check(identical(kf_comm_greeting(nonce), cm$greeting), "comm greeting reproduced byte for byte")
check(identical(kf_parse_comm_greeting(cm$greeting), nonce), "comm greeting parses back to the nonce")
check(is.null(kf_parse_comm_greeting(sub('"version":2', '"version":1', cm$greeting, fixed = TRUE))),
      "greeting of another version is refused")

for (req in cm$requests) {
  envelope <- kf_parse_json_object(req$line)
  check(identical(kf_comm_mac(comm_key, nonce, envelope$request), hex(req$mac_hex)), paste("comm MAC for", req$op))
  verdict <- kf_comm_verify(comm_key, nonce, req$line)
  check(isTRUE(verdict$ok) && identical(verdict$op, req$op), paste("comm request verifies:", req$op))
  for (name in names(req$params)) {
    check(identical(as.numeric(verdict$params[[name]]), as.numeric(req$params[[name]])),
          paste("comm request", req$op, "parameter", name))
  }
  check(!isTRUE(kf_comm_verify(comm_key, hex(sub("^c0", "c1", cm$nonce_hex)), req$line)$ok),
        paste("comm request for", req$op, "refused on another connection's nonce"))
  check(!isTRUE(kf_comm_verify(rev(comm_key), nonce, req$line)$ok),
        paste("comm request for", req$op, "refused under another key"))
}
check(identical(kf_comm_reply(TRUE, alive = TRUE), cm$reply_ok), "comm ok reply reproduced byte for byte")
check(identical(kf_comm_reply(FALSE, error = "unauthenticated"), '{"ok":false,"error":"unauthenticated"}'),
      "comm unauthenticated reply")

comm_rejects <- Filter(function(x) !is.null(x$comm_line), v$reject)
check(length(comm_rejects) >= 1L, "vectors hold a comm reject line")
for (bad in comm_rejects) {
  verdict <- kf_comm_verify(comm_key, nonce, bad$comm_line)
  check(!isTRUE(verdict$ok) && identical(verdict$error, "unauthenticated"), paste("refused:", bad$why))
}

# Hostile shapes that must never be acted on.
ping <- cm$requests[[1L]]$line
hostile <- list(
  "no MAC" = '{"request":"{\\"op\\":\\"kill\\"}"}',
  "GP v1 signum request" = '{"signum": 9}',
  "GP v1 shutdown request" = '{"shutdown": 1}',
  "not JSON" = "kill",
  "file name instead of JSON" = "/etc/passwd",
  "JSON array" = "[1,2]",
  "repeated request key" = sub("{", '{"request":"{\\"op\\":\\"kill\\"}",', ping, fixed = TRUE),
  "over-long line" = paste0(substr(ping, 1L, nchar(ping) - 1L), ',"pad":"', strrep("x", 4200L), '"}'),
  "MAC not base64" = sub('"mac":"', '"mac":"!', ping, fixed = TRUE)
)
for (name in names(hostile)) {
  check(!isTRUE(kf_comm_verify(comm_key, nonce, hostile[[name]])$ok), paste("refused:", name))
}
signed <- function(request) {
  paste0('{"request":', kf_json_string(request), ',"mac":"', kf_b64encode(kf_comm_mac(comm_key, nonce, request)), '"}')
}
check(identical(kf_comm_verify(comm_key, nonce, signed('{"op":"exec","command":"id"}'))$error, "unknown op"),
      "authentic but unknown op is refused")
check(!isTRUE(kf_comm_verify(comm_key, nonce, signed('{"op":"shutdown","grace":"soon"}'))$ok),
      "shutdown with a non-numeric grace is refused")
check(identical(kf_comm_verify(comm_key, nonce, signed('{"op":"shutdown","grace":600}'))$params$grace, 60),
      "shutdown grace is capped at 60 s")
check(identical(kf_comm_verify(comm_key, nonce, signed('{"op":"shutdown"}'))$params$grace, 5),
      "shutdown grace defaults to 5 s")

# ---- protocol 2.2: the signal op (protocol-vectors-2.2.json, next to the v2 file; same comm key and nonce)
v22 <- jsonlite::read_json(file.path(dirname(vectors_path), "protocol-vectors-2.2.json"), simplifyVector = FALSE)
check(identical(v22$minor, 2L) && identical(hex(v22$comm_key_hex), comm_key) && identical(hex(v22$nonce_hex), nonce),
      "signal vectors: protocol 2.2 with the v2 comm key and nonce")
check(identical(unlist(v22$allowed), KF_ALLOWED_SIGNALS), "signal vectors: the same allowed signals")
for (req in v22$accept) {
  verdict <- kf_comm_verify(comm_key, nonce, req$line)
  check(isTRUE(verdict$ok) && identical(verdict$op, "signal") && identical(verdict$params$signal, req$signal),
        paste("signal vectors: accepted", req$signal))
  check(is.numeric(kf_signal_number(req$signal)) && kf_signal_number(req$signal) > 0L,
        paste("signal vectors: R knows the number of", req$signal))
}
for (bad in v22$refuse) {
  verdict <- kf_comm_verify(comm_key, nonce, bad$line)
  check(!isTRUE(verdict$ok) && identical(verdict$error, bad$error), paste("signal vectors: refused", bad$why))
}

# ---- helpers
check(kf_constant_time_equal(as.raw(1:32), as.raw(1:32)) && !kf_constant_time_equal(as.raw(1:32), as.raw(c(1:31, 0L))) &&
        !kf_constant_time_equal(as.raw(1:32), as.raw(1:31)), "constant-time comparison")
check(is.null(kf_b64decode("YWJj\n")) && is.null(kf_b64decode("YWJ")) && identical(kf_b64decode("YWJj"), charToRaw("abc")),
      "strict base64")

# ---- kernel ids: the same accept/refuse verdicts as the Python and Scala launchers (a trailing newline included)
ids <- v$kernel_ids
check(length(ids$invalid) >= 1L, "vectors hold invalid kernel ids")
for (id in ids$valid) check(grepl(KF_KERNEL_ID_PATTERN, id), paste("kernel id accepted:", id))
for (bad in ids$invalid) {
  refused <- tryCatch({
    kf_seal_report(r$plaintext, bad$id, v$public_key)
    FALSE
  }, error = function(e) grepl("not a valid protocol kernel id", conditionMessage(e), fixed = TRUE))
  check(!grepl(KF_KERNEL_ID_PATTERN, bad$id) && refused, paste("kernel id refused:", bad$why))
}

kf_finish()
