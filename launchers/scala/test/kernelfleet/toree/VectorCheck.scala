package kernelfleet.toree

import java.net.{InetAddress, InetSocketAddress, ServerSocket}
import java.nio.charset.StandardCharsets.UTF_8
import java.nio.file.{Files, Paths}
import java.security.SecureRandom

/** Checks the launcher's protocol code against docs/protocol-vectors.json; run by tests/launchers/test_scala_launcher.py.
 *
 * Usage: VectorCheck <protocol-vectors.json>. Prints `ok NAME` or `FAIL NAME: why` per check, plus `FRESH <line>`
 * (a report sealed with real randomness for the vectors' public key, for the Python side to open) and
 * `ESCAPES <json>` (for the Python side to compare with json.dumps). Exits 1 if any check failed.
 */
object VectorCheck extends Checks {

  /** A "random" source that returns the vectors' fixed OAEP seed, so RSA-OAEP becomes deterministic. */
  final class FixedSeed(seed: Array[Byte]) extends SecureRandom {
    private var used = 0
    override def nextBytes(bytes: Array[Byte]): Unit = {
      require(used + bytes.length <= seed.length, "OAEP asked for more seed than the vectors hold")
      System.arraycopy(seed, used, bytes, 0, bytes.length)
      used += bytes.length
    }
  }

  private def unhex(s: String): Array[Byte] = s.grouped(2).map(Integer.parseInt(_, 16).toByte).toArray
  private def hex(b: Array[Byte]): String = b.map(x => f"${x & 0xff}%02x").mkString


  def main(args: Array[String]): Unit = {
    val vectors = Json.parseObject(new String(Files.readAllBytes(Paths.get(args(0))), UTF_8))
    val report = obj(vectors, "report")
    val comm = obj(vectors, "comm")
    val publicKey = Protocol.loadPublicKey(s(vectors, "public_key"))

    check("report plaintext encodes in the vectors' field order") {
      val p = Json.parseObject(s(report, "plaintext"))
      val info = ConnectionInfo(
        n(p, "shell_port"), n(p, "iopub_port"), n(p, "stdin_port"), n(p, "control_port"), n(p, "hb_port"),
        s(p, "ip"), s(p, "key"), s(p, "kernel_name"), n(p, "comm_port"), s(p, "comm_key"), s(p, "launch_token"),
        Json.int(p, "pid").map(_.toLong), Json.int(p, "pgid").map(_.toLong), s(p, "kernel_id"), None
      )
      expectEq("plaintext", info.reportJson, s(report, "plaintext"))
    }

    check("report line reproduced byte for byte") {
      val line = Protocol.sealReport(
        s(report, "plaintext"), s(report, "kernel_id"), publicKey,
        unhex(s(report, "aes_key_hex")), unhex(s(report, "mac_key_hex")), unhex(s(report, "iv_hex")),
        new FixedSeed(unhex(s(report, "oaep_seed_hex")))
      )
      expectEq("line", line, s(report, "line") + "\n")
    }

    check("fresh report sealed with SecureRandom") {
      val p = Json.parseObject(s(report, "plaintext"))
      val line = Protocol.sealReport(s(report, "plaintext"), s(p, "kernel_id"), publicKey, new SecureRandom())
      if (line == s(report, "line") + "\n") throw new AssertionError("a fresh report equals the fixed vector")
      print(s"FRESH $line")
    }

    val commKey = unhex(s(comm, "comm_key_hex"))
    val nonce = unhex(s(comm, "nonce_hex"))

    check("comm greeting") {
      expectEq("greeting", Protocol.greeting(nonce), s(comm, "greeting") + "\n")
    }

    comm("requests").asInstanceOf[Vector[Map[String, Any]]].foreach { r =>
      check(s"comm request '${s(r, "op")}' verifies") {
        val req = Protocol.verifyRequest(commKey, nonce, s(r, "line"))
        expectEq("op", req.op, s(r, "op"))
        val params = obj(r, "params").map { case (k, v) => k -> v }
        expectEq("params", req.params.toMap, params)
        val requestString = Json.str(Json.parseObject(s(r, "line")), "request").get
        expectEq("mac", hex(Protocol.commMac(commKey, nonce, requestString.getBytes(UTF_8))), s(r, "mac_hex"))
      }
      check(s"comm request '${s(r, "op")}' refused on another nonce") {
        val other = nonce.clone(); other(0) = (other(0) ^ 1).toByte
        expectRefused(Protocol.verifyRequest(commKey, other, s(r, "line")))
      }
    }

    vectors("reject").asInstanceOf[Vector[Map[String, Any]]].filter(_.contains("comm_line")).foreach { r =>
      check(s"reject: ${s(r, "why")}") {
        expectRefused(Protocol.verifyRequest(commKey, nonce, s(r, "comm_line")))
      }
    }

    check("hostile comm lines are unauthenticated") {
      val good = s(comm("requests").asInstanceOf[Vector[Map[String, Any]]].head, "line")
      Seq(
        "", "not json", "{}", "[]", """{"request":"{\"op\":\"kill\"}"}""",
        """{"request":"{\"op\":\"kill\"}","mac":"!!"}""",
        """{"request":{"op":"kill"},"mac":"AAAA"}""",
        good.replace("ping", "kill"),
        good.replace("\"mac\"", "\"mac\":\"AAAA\",\"mac\""), // duplicate key
        good + " " * (Protocol.MaxCommLineBytes + 1)
      ).foreach(l => expectRefused(Protocol.verifyRequest(commKey, nonce, l)))
    }

    check("comm reply") {
      expectEq("reply", Protocol.reply(ok = true, "alive" -> true), s(comm, "reply_ok") + "\n")
    }

    // Protocol 2.2's signal op: protocol-vectors-2.2.json beside the v2 file, with the same comm key and nonce.
    val v22 = Json.parseObject(new String(Files.readAllBytes(Paths.get(args(0)).resolveSibling("protocol-vectors-2.2.json")), UTF_8))
    check("signal vectors: the same allowed signals, key and nonce") {
      expectEq("allowed", v22("allowed"), Protocol.AllowedSignals)
      expectEq("key", s(v22, "comm_key_hex"), s(comm, "comm_key_hex"))
      expectEq("nonce", s(v22, "nonce_hex"), s(comm, "nonce_hex"))
    }
    v22("accept").asInstanceOf[Vector[Map[String, Any]]].foreach { r =>
      check(s"signal vectors: accepted ${s(r, "signal")}") {
        val req = Protocol.verifyRequest(commKey, nonce, s(r, "line"))
        expectEq("op", req.op, "signal")
        expectEq("signal", Protocol.signalName(req.params), s(r, "signal"))
        new sun.misc.Signal(s(r, "signal").stripPrefix("SIG")) // the JVM knows the name on this platform
      }
    }
    v22("refuse").asInstanceOf[Vector[Map[String, Any]]].foreach { r =>
      check(s"signal vectors: refused ${s(r, "why")}") {
        try { Protocol.verifyRequest(commKey, nonce, s(r, "line")); throw new AssertionError("accepted") }
        catch { case e: Protocol.ProtocolError => expectEq("error", e.getMessage, s(r, "error")) }
      }
    }
    check("signal: this launcher refuses SIGSTOP and SIGTSTP (they would stop its comm port)") {
      expectEq("refused", CommServer.RefusedSignals, Set("SIGSTOP", "SIGTSTP"))
      expectEq("allowed by the protocol", CommServer.RefusedSignals.subsetOf(Protocol.AllowedSignals.toSet), true)
    }

    check("json escapes") {
      val tricky = "q\"b\\s/n\nt\tc\u0001d\u007fe\u00e9\u2028x\ud83d\ude00"
      val back = Json.str(Json.parseObject(Json.encode(Seq("s" -> tricky))), "s")
      expectEq("round trip", back, Some(tricky))
      println("ESCAPES " + Json.encode(Seq("s" -> tricky)))
    }

    check("port range parsing") {
      expectEq("unset", PortRange.parse(None), PortRange(0, 0))
      expectEq("0..0", PortRange.parse(Some("0..0")).unrestricted, true)
      expectEq("range", PortRange.parse(Some(" 40000..41000 ")), PortRange(40000, 41000))
      Seq("1..2", "5000", "a..b", "6000..5000", "40000..70000").foreach { bad =>
        try { PortRange.parse(Some(bad)); throw new AssertionError(s"accepted $bad") }
        catch { case _: IllegalArgumentException => () }
      }
    }

    check("ports inside a range, distinct, bounded retries on a full range") {
      val lo = InetAddress.getLoopbackAddress
      // Ten ports below Linux's ephemeral range (32768-60999): on a busy host a window next to a just-used ephemeral
      // port is full of other connections' ports (and TIME_WAIT ones, which a bind without SO_REUSEADDR refuses).
      val lower = 20000 + new SecureRandom().nextInt(10000)
      val range = PortRange(lower, lower + 9)
      val reserved = Ports.reserve(lo, range, 6, Set.empty, new SecureRandom())
      val ports = reserved.map(Ports.portOf)
      expectEq("distinct", ports.distinct.size, 6)
      val rival = new ServerSocket()
      rival.setReuseAddress(false) // the JDK's default on Linux is true, which would share the port, as Toree does
      try { rival.bind(new InetSocketAddress(lo, ports.head)); throw new AssertionError("a reserved port was taken") }
      catch { case _: java.io.IOException => () }
      finally rival.close()
      reserved.foreach(_.close())
      if (!ports.forall(p => p >= range.lower && p <= range.upper)) throw new AssertionError(s"$ports outside $range")
      val holder = new ServerSocket()
      holder.bind(new InetSocketAddress(lo, 0))
      val full = PortRange(holder.getLocalPort, holder.getLocalPort)
      val started = System.nanoTime()
      try { Ports.reserve(lo, full, 1, Set.empty, new SecureRandom()); throw new AssertionError("picked a taken port") }
      catch { case _: IllegalStateException => () }
      finally holder.close()
      if (System.nanoTime() - started > 5e9) throw new AssertionError("retries on a full range took too long")
    }

    check("argument translation for Toree") {
      val env = Map("LAUNCH_TOKEN" -> "tok", "RESPONSE_ADDRESS" -> "127.0.0.1:1", "PUBLIC_KEY" -> "k").get _
      val o = Options.parse(
        Array("--kernel-id", "k-1", "--spark-context-initialization-mode", "none", "--port-range=0..0", "--interpreter-plugin", "x:y"),
        env
      )
      expectEq("none", Options.toreeArgs(o, "/p"), Vector("--profile", "/p", "--nosparkcontext", "--alternate-sigint", "USR2", "--interpreter-plugin", "x:y"))
      val lazyOpts = Options.parse(Array("--RemoteProcessProxy.kernel-id", "k", "--spark-context-initialization-mode", "lazy", "--alternate-sigint", "USR1"), env)
      expectEq("lazy", Options.toreeArgs(lazyOpts, "/p"), Vector("--profile", "/p", "--spark-context-initialization-mode", "lazy", "--alternate-sigint", "USR1"))
      expectEq("signal", Options.alternateSigint(Options.toreeArgs(lazyOpts, "/p")), "USR1")
      try { Options.parse(Array("--kernel-id", "../etc"), env); throw new AssertionError("accepted a bad kernel id") }
      catch { case _: Options.UsageError => () }
      try { Options.parse(Array("--kernel-id", "k"), Map("RESPONSE_ADDRESS" -> "a:1", "PUBLIC_KEY" -> "k").get _); throw new AssertionError("no token accepted") }
      catch { case _: Options.UsageError => () }
    }

    val kernelIds = obj(vectors, "kernel_ids")
    check("kernel ids: the vectors' valid ids are accepted") {
      kernelIds("valid").asInstanceOf[Vector[Any]].foreach { id =>
        if (!Protocol.validKernelId(id.toString)) throw new AssertionError(s"refused ${id}")
      }
    }
    kernelIds("invalid").asInstanceOf[Vector[Map[String, Any]]].foreach { c =>
      check(s"kernel id refused: ${s(c, "why")}") {
        val id = Json.str(c, "id").getOrElse(throw new AssertionError("vector field id"))
        if (Protocol.validKernelId(id)) throw new AssertionError("accepted")
      }
    }

    check("response address parsing") {
      expectEq("v4", Report.parseAddress("10.0.0.1:8877"), ("10.0.0.1", 8877))
      expectEq("v6", Report.parseAddress("[::1]:8877"), ("::1", 8877))
      Seq("nohost", "::1:80", "h:0", "h:x").foreach { bad =>
        try { Report.parseAddress(bad); throw new AssertionError(s"accepted $bad") }
        catch { case _: IllegalArgumentException => () }
      }
    }

    finish()
  }

  private def expectRefused(body: => Any): Unit =
    try { body; throw new AssertionError("accepted") }
    catch { case e: Protocol.ProtocolError => expectEq("error", e.getMessage, "unauthenticated") }
}
