# Kernel Fleet launch protocol v2 in pure R (docs/protocol.md, sections 3 and 4).
#
# The R openssl package has no RSA-OAEP, so OAEP (RFC 8017 EME-OAEP, SHA-256, MGF1-SHA-256, empty
# label) is encoded here and raised to the public exponent with bignum_mod_exp. Everything in this file
# is a pure function of its inputs (randomness comes in as arguments with CSPRNG defaults), so
# tests/test_vectors.R can pin it byte for byte to docs/protocol-vectors.json.

KF_PROTOCOL_NAME <- "kernelfleet"
KF_PROTOCOL_VERSION <- 2L
KF_REPORT_MAC_LABEL <- c(charToRaw("kernelfleet-report-v2"), as.raw(0L))
KF_COMM_MAC_LABEL <- c(charToRaw("kernelfleet-comm-v2"), as.raw(0L))
KF_KERNEL_ID_PATTERN <- "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
KF_MAX_COMM_LINE_BYTES <- 4096L
KF_HASH_BYTES <- 32L
KF_COMM_OPS <- c("ping", "interrupt", "terminate", "kill", "shutdown", "signal")
# Protocol 2.2's signal op: the only signals it carries, by name (docs/protocol.md, section 4).
KF_ALLOWED_SIGNALS <- c("SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGCONT", "SIGSTOP", "SIGTSTP")
KF_DEFAULT_GRACE <- 5
KF_MAX_GRACE <- 60

kf_random_bytes <- function(n) {
  # The OpenSSL CSPRNG; it reseeds itself after fork (OpenSSL >= 1.1.1), so the forked listener's
  # nonces never repeat the kernel process's randomness.
  as.vector(openssl::rand_bytes(n))
}

kf_b64encode <- function(bytes) {
  # Standard alphabet with padding and no line breaks (docs/protocol.md "B64").
  openssl::base64_encode(as.vector(bytes), linebreaks = FALSE)
}

kf_b64decode <- function(text, length = NULL) {
  # Strict: anything but canonical standard base64 is refused instead of being decoded leniently.
  if (!is.character(text) || base::length(text) != 1L || is.na(text)) return(NULL)
  if (nchar(text) %% 4L != 0L || !grepl("^[A-Za-z0-9+/]*={0,2}$", text)) return(NULL)
  bytes <- tryCatch(as.vector(openssl::base64_decode(text)), error = function(e) NULL)
  if (is.null(bytes) || (!is.null(length) && base::length(bytes) != length)) return(NULL)
  bytes
}

kf_sha256 <- function(bytes) as.vector(openssl::sha256(bytes))

kf_hmac_sha256 <- function(key, bytes) as.vector(openssl::sha256(bytes, key = key))

kf_constant_time_equal <- function(a, b) {
  # Touches every byte whatever the content, so timing reveals nothing about where a MAC differs.
  if (!is.raw(a) || !is.raw(b) || length(a) != length(b)) return(FALSE)
  sum(as.integer(xor(a, b))) == 0L
}

kf_utf8_bytes <- function(text) charToRaw(enc2utf8(text))

kf_json_string <- function(text) as.character(jsonlite::toJSON(enc2utf8(text), auto_unbox = TRUE))

kf_parse_json_object <- function(text) {
  # parse_json never treats its input as a file name or URL (fromJSON would); arrays, scalars and
  # objects with a repeated key are refused, so there is exactly one reading of every message.
  if (!is.character(text) || length(text) != 1L || !startsWith(text, "{")) return(NULL)
  obj <- tryCatch(jsonlite::parse_json(text, simplifyVector = FALSE), error = function(e) NULL)
  if (!is.list(obj) || (length(obj) > 0L && (is.null(names(obj)) || anyDuplicated(names(obj)) > 0L))) {
    return(NULL)
  }
  if (length(obj) == 0L) return(structure(list(), names = character()))
  obj
}

# ---------------------------------------------------------------------------------------- RSA-OAEP

kf_read_public_key <- function(public_key_b64) {
  der <- kf_b64decode(gsub("[[:space:]]", "", public_key_b64))
  if (is.null(der)) stop("PUBLIC_KEY is not base64 of a DER public key", call. = FALSE)
  key <- tryCatch(openssl::read_pubkey(der, der = TRUE), error = function(e) NULL)
  if (is.null(key) || !inherits(key, "rsa")) stop("PUBLIC_KEY is not an RSA public key", call. = FALSE)
  data <- as.list(key)$data
  modulus <- kf_strip_zeros(as.raw(data$n))
  if (length(modulus) * 8L < 2048L) stop("PUBLIC_KEY is shorter than 2048 bits", call. = FALSE)
  list(n = data$n, e = data$e, k = length(modulus))
}

kf_strip_zeros <- function(bytes) {
  first <- which(bytes != as.raw(0L))
  if (length(first) == 0L) raw(0) else bytes[first[1L]:length(bytes)]
}

kf_left_pad <- function(bytes, size) c(raw(size - length(bytes)), bytes)

kf_mgf1_sha256 <- function(seed, size) {
  out <- raw(0)
  counter <- 0
  while (length(out) < size) {
    c4 <- as.raw(c(counter %/% 16777216, counter %/% 65536, counter %/% 256, counter) %% 256)
    out <- c(out, kf_sha256(c(seed, c4)))
    counter <- counter + 1
  }
  out[seq_len(size)]
}

kf_oaep_encrypt <- function(key, message, seed = kf_random_bytes(KF_HASH_BYTES)) {
  # RFC 8017 section 7.1.1 with an empty label, then the RSA primitive m^e mod n.
  k <- key$k
  h <- KF_HASH_BYTES
  if (length(seed) != h) stop("OAEP seed must be 32 bytes", call. = FALSE)
  if (length(message) > k - 2L * h - 2L) stop("message too long for RSA-OAEP", call. = FALSE)
  db <- c(kf_sha256(raw(0)), raw(k - length(message) - 2L * h - 2L), as.raw(1L), message)
  masked_db <- xor(db, kf_mgf1_sha256(seed, k - h - 1L))
  masked_seed <- xor(seed, kf_mgf1_sha256(masked_db, h))
  encoded <- c(as.raw(0L), masked_seed, masked_db)
  cipher <- openssl::bignum_mod_exp(openssl::bignum(encoded), key$e, key$n)
  kf_left_pad(kf_strip_zeros(as.raw(cipher)), k)
}

# ---------------------------------------------------------------------------------------- the report

kf_report_mac <- function(mac_key, kernel_id, wrapped, iv, ciphertext, label = KF_REPORT_MAC_LABEL) {
  kf_hmac_sha256(mac_key, c(label, kf_utf8_bytes(kernel_id), as.raw(0L), wrapped, iv, ciphertext))
}

kf_seal_report <- function(plaintext, kernel_id, public_key_b64, ...) {
  # Returns the report line without its trailing newline. The key arguments (...) exist for the vectors only.
  if (!grepl(KF_KERNEL_ID_PATTERN, kernel_id)) stop("kernel id is not a valid protocol kernel id", call. = FALSE)
  head <- paste0('"protocol":', kf_json_string(KF_PROTOCOL_NAME), ',"version":', KF_PROTOCOL_VERSION,
                 ',"kernel_id":', kf_json_string(kernel_id))
  kf_seal_envelope(plaintext, head, kernel_id, KF_REPORT_MAC_LABEL, public_key_b64, ...)
}

kf_seal_envelope <- function(plaintext, head, subject, label, public_key_b64,
                             aes_key = kf_random_bytes(32L), mac_key = kf_random_bytes(32L),
                             iv = kf_random_bytes(16L), oaep_seed = kf_random_bytes(KF_HASH_BYTES)) {
  # Section 3's sealing, shared by the report and a standby's registration (section 8, kf_protocol_standby.R):
  # `head` is the envelope's clear fields (JSON members, no braces); the MAC binds `label` and `subject` (the id).
  key <- kf_read_public_key(public_key_b64)
  ciphertext <- as.vector(openssl::aes_cbc_encrypt(kf_utf8_bytes(plaintext), key = aes_key, iv = iv))
  wrapped <- kf_oaep_encrypt(key, c(aes_key, mac_key), seed = oaep_seed)
  mac <- kf_report_mac(mac_key, subject, wrapped, iv, ciphertext, label)
  paste0(
    "{", head,
    ',"key":"', kf_b64encode(wrapped),
    '","iv":"', kf_b64encode(iv),
    '","ciphertext":"', kf_b64encode(ciphertext),
    '","mac":"', kf_b64encode(mac), '"}'
  )
}

kf_connection_plaintext <- function(info) {
  # Compact UTF-8 JSON of the connection info; integers stay integers, strings are escaped by jsonlite.
  as.character(jsonlite::toJSON(info, auto_unbox = TRUE, digits = NA))
}

kf_parse_broker_reply <- function(line) {
  obj <- kf_parse_json_object(line)
  if (is.null(obj) || !is.logical(obj$ok) || length(obj$ok) != 1L) return(NULL)
  obj
}

# ---------------------------------------------------------------------------------------- comm port

kf_comm_greeting <- function(nonce) {
  paste0('{"protocol":"', KF_PROTOCOL_NAME, '","version":', KF_PROTOCOL_VERSION,
         ',"nonce":"', kf_b64encode(nonce), '"}')
}

kf_parse_comm_greeting <- function(line) {
  obj <- kf_parse_json_object(line)
  if (is.null(obj) || !identical(obj$protocol, KF_PROTOCOL_NAME) || !identical(obj$version, KF_PROTOCOL_VERSION)) {
    return(NULL)
  }
  kf_b64decode(obj$nonce, length = 32L)
}

kf_comm_mac <- function(comm_key, nonce, request) {
  kf_hmac_sha256(comm_key, c(KF_COMM_MAC_LABEL, nonce, kf_utf8_bytes(request)))
}

kf_comm_verify <- function(comm_key, nonce, line) {
  # Returns list(ok = TRUE, op, params) for an authentic, known request, else list(ok = FALSE, error).
  # Nothing in an unauthenticated line is looked at beyond what is needed to check its MAC.
  unauthenticated <- list(ok = FALSE, error = "unauthenticated")
  if (!is.character(line) || length(line) != 1L || nchar(line, type = "bytes") > KF_MAX_COMM_LINE_BYTES) {
    return(unauthenticated)
  }
  obj <- kf_parse_json_object(line)
  if (is.null(obj)) return(unauthenticated)
  request <- obj$request
  mac <- kf_b64decode(obj$mac, length = KF_HASH_BYTES)
  if (!is.character(request) || length(request) != 1L || is.null(mac)) return(unauthenticated)
  if (!kf_constant_time_equal(kf_comm_mac(comm_key, nonce, request), mac)) return(unauthenticated)
  params <- kf_parse_json_object(request)
  op <- if (is.null(params)) NULL else params$op
  if (!is.character(op) || length(op) != 1L || !(op %in% KF_COMM_OPS)) {
    return(list(ok = FALSE, error = "unknown op"))
  }
  params$op <- NULL
  if (op == "shutdown") {
    grace <- if (is.null(params$grace)) KF_DEFAULT_GRACE else params$grace
    if (!is.numeric(grace) || length(grace) != 1L || is.na(grace) || grace < 0) {
      return(list(ok = FALSE, error = "grace must be a number of seconds"))
    }
    params$grace <- min(as.numeric(grace), KF_MAX_GRACE)
  }
  if (op == "signal") {
    # A name, never a number (numbers differ across platforms), and only one of the allowed names.
    name <- params$signal
    if (!is.character(name) || length(name) != 1L) {
      return(list(ok = FALSE, error = "signal must be a name such as SIGUSR1"))
    }
    if (!(name %in% KF_ALLOWED_SIGNALS)) return(list(ok = FALSE, error = "signal not allowed"))
  }
  list(ok = TRUE, op = op, params = params)
}

kf_comm_reply <- function(ok, alive = NULL, error = NULL) {
  if (isTRUE(ok)) {
    paste0('{"ok":true,"alive":', if (isTRUE(alive)) "true" else "false", "}")
  } else {
    paste0('{"ok":false,"error":', kf_json_string(error), "}")
  }
}
