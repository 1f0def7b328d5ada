# Protocol 2.1 in pure R: a warm-pool standby's registration and the server's claim (docs/protocol.md, section 8).
#
# The registration is sealed like a report (kf_seal_envelope) with its own head and MAC label, and carries a fresh
# 64-byte claim key and a 32-byte nonce. The claim is AES-256-CBC under the claim key's first half, encrypt-then-MAC
# under its second half over the pool, the standby id and that nonce. kf_claim_verifier accepts exactly one claim
# made for this standby and refuses everything after it (a replayed or second claim). Pure functions of their
# inputs like kf_protocol.R, so tests/test_standby.R pins them to docs/protocol-vectors-2.1.json. Called by
# kf_standby.R (standby mode).

KF_PROTOCOL_MINOR <- 1L
KF_STANDBY_MAC_LABEL <- c(charToRaw("kernelfleet-standby-v2.1"), as.raw(0L))
KF_CLAIM_MAC_LABEL <- c(charToRaw("kernelfleet-claim-v2.1"), as.raw(0L))
KF_CLAIM_KEY_BYTES <- 64L
KF_NONCE_BYTES <- 32L
KF_MAX_CLAIM_BYTES <- 256L * 1024L
KF_MAX_ENV_VALUE <- 65536L
# The claim never sets these in the kernel's environment: the secrets travel in their own fields.
KF_CLAIM_RESERVED_ENV <- c("LAUNCH_TOKEN", "LAUNCH_TOKEN_FILE")

kf_seal_registration <- function(standby_id, pool, token, claim_key, nonce, public_key_b64, pid = NULL,
                                 launcher = "", ...) {
  # The standby's first line, without its newline. `...` (aes_key, mac_key, iv, oaep_seed) exists for the vectors.
  for (id in c(standby_id, pool)) {
    if (!grepl(KF_KERNEL_ID_PATTERN, id)) stop("standby id and pool must be valid protocol ids", call. = FALSE)
  }
  if (length(claim_key) != KF_CLAIM_KEY_BYTES || length(nonce) != KF_NONCE_BYTES) {
    stop(sprintf("a claim key is %d bytes and a nonce %d", KF_CLAIM_KEY_BYTES, KF_NONCE_BYTES), call. = FALSE)
  }
  body <- list(standby_id = standby_id, pool = pool, launch_token = token, claim_key = kf_b64encode(claim_key),
               nonce = kf_b64encode(nonce))
  if (!is.null(pid)) body$pid <- as.integer(pid)
  if (nzchar(launcher)) body$launcher <- launcher
  head <- paste0('"protocol":', kf_json_string(KF_PROTOCOL_NAME), ',"version":', KF_PROTOCOL_VERSION,
                 ',"minor":', KF_PROTOCOL_MINOR, ',"standby_id":', kf_json_string(standby_id))
  kf_seal_envelope(kf_connection_plaintext(body), head, standby_id, KF_STANDBY_MAC_LABEL, public_key_b64, ...)
}

kf_claim_mac <- function(mac_key, pool, standby_id, nonce, iv, ciphertext) {
  kf_hmac_sha256(mac_key, c(KF_CLAIM_MAC_LABEL, kf_utf8_bytes(pool), as.raw(0L), kf_utf8_bytes(standby_id),
                            as.raw(0L), nonce, iv, ciphertext))
}

kf_claim_answer <- function(error = NULL) {
  # The standby's one-line answer to a claim (without its newline), before it closes the connection.
  if (is.null(error)) '{"ok":true}' else paste0('{"ok":false,"error":', kf_json_string(error), "}")
}

kf_claim_fields <- function(obj) {
  # The decrypted claim as list(kernel_id, launch_token, env, working_dir, port_range), or a refusal's reason.
  if (is.null(obj)) return("claim does not decrypt to a JSON object")
  is_text <- function(x) is.character(x) && length(x) == 1L && !is.na(x)
  if (!is_text(obj$kernel_id) || !grepl(KF_KERNEL_ID_PATTERN, obj$kernel_id)) return("claim has no valid kernel_id")
  if (!is_text(obj$launch_token) || !nzchar(obj$launch_token) || !is_text(obj$port_range)) {
    return("claim lacks its launch token or port range")
  }
  cwd <- obj$working_dir
  if (!is.null(cwd) && (!is_text(cwd) || !startsWith(cwd, "/"))) return("claim working_dir must be an absolute path")
  env <- obj$env
  if (!is.list(env) || (length(env) > 0L && (is.null(names(env)) || anyDuplicated(names(env)) > 0L))) {
    return("claim env must be an object of strings")
  }
  for (name in names(env)) {
    value <- env[[name]]
    if (!is_text(value) || !nzchar(name) || grepl("=", name, fixed = TRUE) || nchar(value) > KF_MAX_ENV_VALUE ||
        name %in% KF_CLAIM_RESERVED_ENV) {
      return(sprintf("claim env entry %s is not allowed", kf_json_string(substr(name, 1L, 60L))))
    }
  }
  list(kernel_id = obj$kernel_id, launch_token = obj$launch_token, env = vapply(env, function(v) v, character(1L)), working_dir = cwd,
       port_range = obj$port_range)
}

kf_claim_verifier <- function(standby_id, pool, claim_key, nonce) {
  # The standby's side: a function of one claim line that returns list(ok = TRUE, claim) for this standby's first
  # valid claim, else list(ok = FALSE, error) -- never acted on. After one verified claim it refuses every line.
  claimed <- FALSE
  refuse <- function(error) list(ok = FALSE, error = error)
  function(line) {
    if (claimed) return(refuse("this standby was claimed already"))
    if (!is.character(line) || length(line) != 1L || is.na(line)) return(refuse("claim is not a line of text"))
    if (nchar(line, type = "bytes") > KF_MAX_CLAIM_BYTES) {
      return(refuse(sprintf("claim larger than %d bytes", KF_MAX_CLAIM_BYTES)))
    }
    obj <- kf_parse_json_object(line)
    if (is.null(obj)) return(refuse("claim is not a JSON object"))
    iv <- kf_b64decode(obj$iv, length = 16L)
    ciphertext <- kf_b64decode(obj$ciphertext)
    mac <- kf_b64decode(obj$mac, length = KF_HASH_BYTES)
    if (is.null(iv) || is.null(ciphertext) || is.null(mac)) return(refuse("claim iv, ciphertext or mac is not base64"))
    if (!identical(obj$protocol, KF_PROTOCOL_NAME) || !identical(obj$version, KF_PROTOCOL_VERSION) ||
        !identical(obj$minor, KF_PROTOCOL_MINOR)) {
      return(refuse("claim does not speak protocol 2.1"))
    }
    if (!identical(obj$pool, pool) || !identical(obj$standby_id, standby_id)) {
      return(refuse("claim is for another pool or standby"))
    }
    expected <- kf_claim_mac(claim_key[33:64], pool, standby_id, nonce, iv, ciphertext)
    if (!kf_constant_time_equal(expected, mac)) return(refuse("claim MAC does not verify"))
    claimed <<- TRUE  # from here on, whatever the content: one claim per standby, ever
    plaintext <- tryCatch(openssl::aes_cbc_decrypt(ciphertext, key = claim_key[1:32], iv = iv),
                          error = function(e) NULL)
    text <- if (is.null(plaintext)) NA_character_ else tryCatch(rawToChar(plaintext), error = function(e) NA_character_)
    if (!is.na(text)) Encoding(text) <- "UTF-8"
    fields <- kf_claim_fields(if (is.na(text) || !validUTF8(text)) NULL else kf_parse_json_object(text))
    if (is.character(fields)) refuse(fields) else list(ok = TRUE, claim = fields)
  }
}
