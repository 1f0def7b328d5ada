package kernelfleet.toree

import java.net.{ConnectException, InetSocketAddress, Socket, SocketTimeoutException}
import java.nio.charset.StandardCharsets.UTF_8
import java.security.interfaces.RSAPublicKey
import java.security.{MessageDigest, SecureRandom}
import javax.crypto.Cipher
import javax.crypto.spec.{IvParameterSpec, SecretKeySpec}

/** Protocol 2.1 (docs/protocol.md section 8) on the launcher's side: a warm-pool standby registers with the server,
 * sealed like a report, and waits on that one connection for the claim that makes it a kernel.
 *
 * ToreeLauncher calls `awaitClaim` when KF_STANDBY_ID is set, after Warmup has done what can be done without a kernel
 * id, a key or a port. The claim is AES-256-CBC under the claim key's first half and HMAC-SHA256 (encrypt-then-MAC)
 * under its second half over the pool, the standby id and the registration's nonce; a standby accepts one claim in
 * its life (ClaimVerifier). The Python twin is kernelfleet.protocol.standby; docs/protocol-vectors-2.1.json pins both.
 */
object Standby {
  val Minor = 1
  val ClaimKeyBytes = 64 // AES-256 key, then HMAC-SHA256 key
  val MaxClaimBytes: Int = 256 * 1024
  val MaxEnvValue = 65536
  val RegisterTimeoutMillis = 30000
  val IdVariable = "KF_STANDBY_ID"
  val PoolVariable = "KF_STANDBY_POOL"
  /** Names a claim never sets: the secrets travel in the claim's own fields. */
  val ReservedEnv: Set[String] = Set("LAUNCH_TOKEN", "LAUNCH_TOKEN_FILE")

  private val RegistrationLabel = "kernelfleet-standby-v2.1\u0000".getBytes(UTF_8)
  private val ClaimLabel = "kernelfleet-claim-v2.1\u0000".getBytes(UTF_8)

  /** A claim this standby must refuse, never act on; the message is safe to log and to send back. */
  final class ClaimError(message: String) extends Exception(message)

  /** The standby ends without a claim; `status` is the launcher's exit status (0: the server let go of it). */
  final class Ended(val status: Int, message: String) extends Exception(message)

  /** What turns the standby into one kernel: the cold launch's inputs (section 2). */
  final case class Claim(kernelId: String, launchToken: String, env: Map[String, String], workingDir: Option[String],
                         portRange: String) {
    override def toString: String = s"Claim($kernelId, ${env.size} variables, $workingDir, $portRange)"
  }

  /** KF_STANDBY_ID and KF_STANDBY_POOL, when this launcher is a standby. */
  def identity(env: String => Option[String]): Option[(String, String)] =
    Options.setValue(env(IdVariable)).map(sid => (sid, Options.setValue(env(PoolVariable)).getOrElse("")))

  def sealRegistration(standbyId: String, pool: String, token: String, claimKey: Array[Byte], nonce: Array[Byte],
                       publicKey: RSAPublicKey, pid: Option[Long], launcher: String, aesKey: Array[Byte],
                       macKey: Array[Byte], iv: Array[Byte], oaepRandom: SecureRandom): String = {
    require(Protocol.validKernelId(standbyId) && Protocol.validKernelId(pool), "standby id or pool is not a valid id")
    require(claimKey.length == ClaimKeyBytes && nonce.length == Protocol.NonceBytes, "bad claim key or nonce size")
    val body = Seq("standby_id" -> standbyId, "pool" -> pool, "launch_token" -> token,
      "claim_key" -> Protocol.b64(claimKey), "nonce" -> Protocol.b64(nonce)) ++
      pid.map("pid" -> _).toSeq ++ (if (launcher.nonEmpty) Seq("launcher" -> launcher) else Nil)
    val head = Seq("protocol" -> Protocol.Name, "version" -> Protocol.Version, "minor" -> Minor, "standby_id" -> standbyId)
    Protocol.sealEnvelope(head, standbyId, RegistrationLabel, Json.encode(body), publicKey, aesKey, macKey, iv, oaepRandom)
  }

  def claimMac(macKey: Array[Byte], pool: String, standbyId: String, nonce: Array[Byte], iv: Array[Byte],
               ciphertext: Array[Byte]): Array[Byte] =
    Protocol.hmacSha256(macKey, ClaimLabel, pool.getBytes(UTF_8), Array[Byte](0), standbyId.getBytes(UTF_8),
      Array[Byte](0), nonce, iv, ciphertext)

  /** The standby's answer to a claim, before it closes the connection. */
  def answer(error: Option[String]): String = error match {
    case None         => Protocol.reply(ok = true)
    case Some(reason) => Protocol.reply(ok = false, "error" -> reason)
  }

  /** Accepts exactly one claim made for this standby, and refuses everything after it. */
  final class ClaimVerifier(standbyId: String, pool: String, claimKey: Array[Byte], nonce: Array[Byte]) {
    @volatile private var used = false

    def claimed: Boolean = used

    def open(line: String): Claim = synchronized {
      if (used) throw new ClaimError("this standby was claimed already")
      if (line.getBytes(UTF_8).length > MaxClaimBytes) throw new ClaimError(s"claim larger than $MaxClaimBytes bytes")
      val obj =
        try Json.parseObject(line)
        catch { case e: Json.JsonError => throw new ClaimError(s"claim is not a JSON object (${e.getMessage})") }
      def field(name: String, length: Int = -1): Array[Byte] =
        try Protocol.unb64(Json.str(obj, name).getOrElse(throw new ClaimError(s"claim has no field '$name'")), name, length)
        catch { case e: Protocol.ProtocolError => throw new ClaimError(e.getMessage) }
      val iv = field("iv", Protocol.IvBytes)
      val ciphertext = field("ciphertext")
      val mac = field("mac", 32)
      if (Json.str(obj, "protocol") != Some(Protocol.Name) || Json.int(obj, "version") != Some(Protocol.Version) ||
          Json.int(obj, "minor") != Some(Minor))
        throw new ClaimError("claim does not speak protocol 2.1")
      if (Json.str(obj, "pool") != Some(pool) || Json.str(obj, "standby_id") != Some(standbyId))
        throw new ClaimError("claim is for another pool or standby")
      val expected = claimMac(claimKey.slice(32, 64), pool, standbyId, nonce, iv, ciphertext)
      if (!MessageDigest.isEqual(expected, mac)) throw new ClaimError("claim MAC does not verify")
      used = true // from here on, whatever the content: one claim per standby, ever
      val plaintext =
        try {
          val aes = Cipher.getInstance("AES/CBC/PKCS5Padding")
          aes.init(Cipher.DECRYPT_MODE, new SecretKeySpec(claimKey.slice(0, 32), "AES"), new IvParameterSpec(iv))
          Json.parseObject(new String(aes.doFinal(ciphertext), UTF_8))
        } catch {
          case _: java.security.GeneralSecurityException | _: Json.JsonError =>
            throw new ClaimError("claim does not decrypt to a JSON object")
        }
      claimFrom(plaintext)
    }
  }

  private def claimFrom(obj: Map[String, Any]): Claim = {
    val kernelId = Json.str(obj, "kernel_id").filter(Protocol.validKernelId)
      .getOrElse(throw new ClaimError("claim has no valid kernel_id"))
    val token = Json.str(obj, "launch_token").filter(_.nonEmpty)
    val ports = Json.str(obj, "port_range")
    if (token.isEmpty || ports.isEmpty) throw new ClaimError("claim lacks its launch token or port range")
    val cwd = obj.get("working_dir") match {
      case None | Some(null)                                       => None
      case Some(d: String) if d.startsWith("/") && !d.contains('\u0000') => Some(d)
      case _ => throw new ClaimError("claim working_dir must be an absolute path")
    }
    val env = obj.get("env") match {
      case Some(m: Map[_, _]) =>
        m.toSeq.map {
          case (name: String, value: String) if name.nonEmpty && !name.contains('=') && !name.contains('\u0000') &&
              !value.contains('\u0000') && value.length <= MaxEnvValue && !ReservedEnv.contains(name) => name -> value
          case (name, _) => throw new ClaimError(s"claim env entry '${name.toString.take(60)}' is not allowed")
        }.toMap
      case _ => throw new ClaimError("claim env must be an object of strings")
    }
    Claim(kernelId, token.get, env, cwd, ports.get)
  }

  /** Register on a connection to RESPONSE_ADDRESS and block until the one claim arrives on it. `accept` applies the
   * claim to this JVM (ProcessState) and returns None, or the reason it cannot (the claim is then refused and the
   * server launches the kernel cold). Throws Ended when the standby ends without a claim. */
  def awaitClaim(opts: Options, standbyId: String, pool: String, random: SecureRandom,
                 accept: Claim => Option[String]): Claim = {
    val claimKey = Protocol.randomBytes(random, ClaimKeyBytes)
    val nonce = Protocol.randomBytes(random, Protocol.NonceBytes)
    val line =
      try sealRegistration(standbyId, pool, opts.launchToken, claimKey, nonce, Protocol.loadPublicKey(opts.publicKey),
        Some(ProcessHandle.current().pid()), ToreeLauncher.LauncherVersion, Protocol.randomBytes(random, Protocol.AesKeyBytes),
        Protocol.randomBytes(random, Protocol.MacKeyBytes), Protocol.randomBytes(random, Protocol.IvBytes), random)
      catch { case e: IllegalArgumentException => throw new Ended(1, s"standby $standbyId: cannot register: ${e.getMessage}") }
    val (host, port) = Report.parseAddress(opts.responseAddress)
    val socket = new Socket()
    try {
      try socket.connect(new InetSocketAddress(host, port), RegisterTimeoutMillis)
      catch {
        case e @ (_: ConnectException | _: SocketTimeoutException) =>
          throw new Ended(1, s"standby $standbyId: cannot reach $host:$port (${e.getMessage})")
      }
      socket.setSoTimeout(RegisterTimeoutMillis)
      val out = socket.getOutputStream
      out.write(line.getBytes(UTF_8))
      out.flush()
      val in = socket.getInputStream // unbuffered: readLine takes no byte of the claim with the verdict
      val verdict = CommServer.readLine(in, Protocol.MaxReplyBytes).toOption
      if (!verdict.exists(v => scala.util.Try(Json.bool(Json.parseObject(v), "ok")).toOption.flatten.contains(true)))
        throw new Ended(1, s"standby $standbyId: the server refused the registration")
      Log.info(s"standby $standbyId: registered with pool $pool at $host:$port")
      socket.setSoTimeout(0)
      val claimLine = CommServer.readLine(in, MaxClaimBytes) match {
        case Right(l) => l
        case Left(_)  => throw new Ended(0, s"standby $standbyId: the server let go of this standby; exiting")
      }
      val verifier = new ClaimVerifier(standbyId, pool, claimKey, nonce)
      val refusal =
        try {
          val claim = verifier.open(claimLine)
          accept(claim).toLeft(claim)
        } catch { case e: ClaimError => Left(e.getMessage) }
      refusal match {
        case Left(reason) =>
          sendQuietly(socket, answer(Some(reason)))
          throw new Ended(1, s"standby $standbyId: refused a claim: $reason")
        case Right(claim) =>
          sendQuietly(socket, answer(None))
          Log.info(s"standby $standbyId: claimed for kernel ${claim.kernelId}")
          claim
      }
    } finally socket.close()
  }

  private def sendQuietly(socket: Socket, line: String): Unit =
    try { socket.getOutputStream.write(line.getBytes(UTF_8)); socket.getOutputStream.flush() }
    catch { case _: java.io.IOException => () }
}
