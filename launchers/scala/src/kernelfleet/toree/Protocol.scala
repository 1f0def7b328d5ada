package kernelfleet.toree

import java.nio.charset.StandardCharsets.UTF_8
import java.security.spec.{MGF1ParameterSpec, X509EncodedKeySpec}
import java.security.interfaces.RSAPublicKey
import java.security.{KeyFactory, MessageDigest, SecureRandom}
import java.util.Base64
import javax.crypto.spec.{IvParameterSpec, OAEPParameterSpec, PSource, SecretKeySpec}
import javax.crypto.{Cipher, Mac}

/** Protocol v2 (docs/protocol.md): the sealed report and the comm-request MAC, with the JDK's own javax.crypto.
 *
 * Every random value comes from SecureRandom; the optional parameters exist only so the test vectors can be
 * reproduced byte for byte.
 */
object Protocol {
  val Name = "kernelfleet"
  val Version = 2
  val AesKeyBytes = 32
  val MacKeyBytes = 32
  val IvBytes = 16
  val CommKeyBytes = 32
  val NonceBytes = 32
  val MinRsaBits = 2048
  val MaxCommLineBytes: Int = 4 * 1024
  val MaxReplyBytes: Int = 4 * 1024

  private val ReportLabel = "kernelfleet-report-v2\u0000".getBytes(UTF_8)
  private val CommLabel = "kernelfleet-comm-v2\u0000".getBytes(UTF_8)
  private val KernelIdPattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$".r.pattern

  /** SHA-256 for OAEP's hash AND its MGF1; the JVM's default OAEP spec would use MGF1-SHA-1 and the server would
   * refuse the key block. */
  val OaepSpec = new OAEPParameterSpec("SHA-256", "MGF1", MGF1ParameterSpec.SHA256, PSource.PSpecified.DEFAULT)

  final class ProtocolError(message: String) extends Exception(message)

  def validKernelId(id: String): Boolean = id != null && KernelIdPattern.matcher(id).matches()

  def b64(data: Array[Byte]): String = Base64.getEncoder.encodeToString(data)

  /** Strict standard base64 (padding required, no whitespace), as the Python side decodes it. */
  def unb64(text: String, field: String, length: Int = -1): Array[Byte] = {
    val data =
      try Base64.getDecoder.decode(text)
      catch { case _: IllegalArgumentException => throw new ProtocolError(s"field '$field' is not valid base64") }
    if (length >= 0 && data.length != length)
      throw new ProtocolError(s"field '$field' must decode to $length bytes, not ${data.length}")
    data
  }

  def randomBytes(random: SecureRandom, n: Int): Array[Byte] = {
    val out = new Array[Byte](n)
    random.nextBytes(out)
    out
  }

  /** Parse PUBLIC_KEY (base64 DER SubjectPublicKeyInfo) and refuse RSA keys below the protocol minimum. */
  def loadPublicKey(b64Der: String): RSAPublicKey = {
    val der = unb64(b64Der.trim, "PUBLIC_KEY")
    val key =
      try KeyFactory.getInstance("RSA").generatePublic(new X509EncodedKeySpec(der)).asInstanceOf[RSAPublicKey]
      catch { case e: Exception => throw new ProtocolError(s"PUBLIC_KEY is not an RSA SubjectPublicKeyInfo (${e.getClass.getSimpleName})") }
    if (key.getModulus.bitLength < MinRsaBits)
      throw new ProtocolError(s"PUBLIC_KEY is ${key.getModulus.bitLength}-bit RSA; protocol v2 needs at least $MinRsaBits")
    key
  }

  def hmacSha256(key: Array[Byte], parts: Array[Byte]*): Array[Byte] = {
    val mac = Mac.getInstance("HmacSHA256")
    mac.init(new SecretKeySpec(key, "HmacSHA256"))
    parts.foreach(p => mac.update(p))
    mac.doFinal()
  }

  /** The report line (with its trailing newline) for the given plaintext connection info.
   *
   * @param oaepRandom source of OAEP's seed; production passes a fresh SecureRandom, the vector test a fixed one.
   */
  def sealReport(
      plaintext: String,
      kernelId: String,
      publicKey: RSAPublicKey,
      aesKey: Array[Byte],
      macKey: Array[Byte],
      iv: Array[Byte],
      oaepRandom: SecureRandom
  ): String = {
    require(validKernelId(kernelId), "kernel id is not a valid protocol kernel id")
    sealEnvelope(Seq("protocol" -> Name, "version" -> Version, "kernel_id" -> kernelId), kernelId, ReportLabel,
      plaintext, publicKey, aesKey, macKey, iv, oaepRandom)
  }

  /** Section 3's sealing, shared by the report and a standby's registration (section 8, Standby.scala): `head` are
   * the clear fields before key/iv/ciphertext/mac; the MAC binds `label` and `subject` (the kernel or standby id). */
  def sealEnvelope(
      head: Seq[(String, Any)],
      subject: String,
      label: Array[Byte],
      plaintext: String,
      publicKey: RSAPublicKey,
      aesKey: Array[Byte],
      macKey: Array[Byte],
      iv: Array[Byte],
      oaepRandom: SecureRandom
  ): String = {
    require(aesKey.length == AesKeyBytes && macKey.length == MacKeyBytes && iv.length == IvBytes, "bad key sizes")
    val aes = Cipher.getInstance("AES/CBC/PKCS5Padding")
    aes.init(Cipher.ENCRYPT_MODE, new SecretKeySpec(aesKey, "AES"), new IvParameterSpec(iv))
    val ciphertext = aes.doFinal(plaintext.getBytes(UTF_8))
    val rsa = Cipher.getInstance("RSA/ECB/OAEPWithSHA-256AndMGF1Padding")
    rsa.init(Cipher.ENCRYPT_MODE, publicKey, OaepSpec, oaepRandom)
    val wrapped = rsa.doFinal(aesKey ++ macKey)
    val mac = hmacSha256(macKey, label, subject.getBytes(UTF_8), Array[Byte](0), wrapped, iv, ciphertext)
    Json.encode(head ++ Seq("key" -> b64(wrapped), "iv" -> b64(iv), "ciphertext" -> b64(ciphertext), "mac" -> b64(mac))) + "\n"
  }

  /** Seal with fresh keys from a SecureRandom: the only way the launcher itself calls sealReport. */
  def sealReport(plaintext: String, kernelId: String, publicKey: RSAPublicKey, random: SecureRandom): String =
    sealReport(
      plaintext,
      kernelId,
      publicKey,
      randomBytes(random, AesKeyBytes),
      randomBytes(random, MacKeyBytes),
      randomBytes(random, IvBytes),
      random
    )

  /** The first line the launcher writes on every comm connection. */
  def greeting(nonce: Array[Byte]): String =
    Json.encode(Seq("protocol" -> Name, "version" -> Version, "nonce" -> b64(nonce))) + "\n"

  def commMac(commKey: Array[Byte], nonce: Array[Byte], request: Array[Byte]): Array[Byte] =
    hmacSha256(commKey, CommLabel, nonce, request)

  /** A comm request whose MAC verified: the op and its other fields. */
  final case class CommRequest(op: String, params: Map[String, Any])

  val Ops: Set[String] = Set("ping", "interrupt", "terminate", "kill", "shutdown", "signal")

  /** Protocol 2.2's signal op: the only signals it carries, by name (never a number: numbers differ by platform). */
  val AllowedSignals: Vector[String] = Vector("SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGCONT", "SIGSTOP", "SIGTSTP")
  val NotASignalName = "signal must be a name such as SIGUSR1"
  val SignalNotAllowed = "signal not allowed"

  /** The signal op's name if it is an allowed one; ProtocolError with the protocol's error otherwise. */
  def signalName(params: Map[String, Any]): String = params.get("signal") match {
    case Some(name: String) if AllowedSignals.contains(name) => name
    case Some(_: String)                                     => throw new ProtocolError(SignalNotAllowed)
    case _                                                   => throw new ProtocolError(NotASignalName)
  }

  /** Verify one request line against this connection's nonce (constant time) and only then parse its body.
   * Throws ProtocolError("unauthenticated") for anything not signed with the comm key for this nonce. */
  def verifyRequest(commKey: Array[Byte], nonce: Array[Byte], line: String): CommRequest = {
    if (line.getBytes(UTF_8).length > MaxCommLineBytes) throw new ProtocolError("unauthenticated")
    val (request, mac) =
      try {
        val obj = Json.parseObject(line)
        (Json.str(obj, "request"), Json.str(obj, "mac").map(unb64(_, "mac", 32)))
      } catch {
        case _: Json.JsonError | _: ProtocolError => (None, None)
      }
    (request, mac) match {
      case (Some(req), Some(m)) if MessageDigest.isEqual(commMac(commKey, nonce, req.getBytes(UTF_8)), m) =>
        val body =
          try Json.parseObject(req)
          catch { case _: Json.JsonError => throw new ProtocolError("request body is not a JSON object") }
        Json.str(body, "op") match {
          case Some("signal")               => CommRequest("signal", Map("signal" -> signalName(body)))
          case Some(op) if Ops.contains(op) => CommRequest(op, body - "op")
          case _                            => throw new ProtocolError("unknown op")
        }
      case _ => throw new ProtocolError("unauthenticated")
    }
  }

  def reply(ok: Boolean, fields: (String, Any)*): String = Json.encode(("ok" -> ok) +: fields) + "\n"
}
