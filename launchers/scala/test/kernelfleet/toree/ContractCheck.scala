package kernelfleet.toree

import java.net.{InetAddress, InetSocketAddress}
import java.nio.charset.StandardCharsets.UTF_8
import java.nio.file.{Files, Paths}
import java.security.SecureRandom

/** Checks the launcher's reading of argv and environment, its retry counts and timeouts against
 * docs/launcher-vectors.json (the launcher contract, docs/protocol.md section 2); the Python and R launchers run the
 * same cases. Run by tests/launchers/test_scala_launcher.py.
 *
 * Usage: ContractCheck <launcher-vectors.json>. Prints `ok NAME` or `FAIL NAME: why` per check; exits 1 if any failed.
 */
object ContractCheck extends Checks {
  private type Obj = Map[String, Any]
  private def list(m: Obj, k: String): Vector[Any] = m(k).asInstanceOf[Vector[Any]]

  /** The case's argv and environment, with LAUNCH_TOKEN_FILE naming a fresh file when the case gives its contents. */
  private def parse(c: Obj): Options = {
    val args = list(c, "argv").map(_.toString).toArray
    var env = obj(c, "env").map { case (k, v) => k -> v.toString }
    Json.str(c, "token_file").foreach { contents =>
      val file = Files.createTempFile("launch-token-", "")
      Files.write(file, contents.getBytes(UTF_8))
      env += "LAUNCH_TOKEN_FILE" -> file.toString
    }
    Options.parse(args, env.get)
  }

  private def observed(o: Options): Obj = {
    val (host, port) = Report.parseAddress(o.responseAddress)
    Map("kernel_id" -> o.kernelId, "response_host" -> host, "response_port" -> port, "public_key" -> o.publicKey,
      "port_range" -> Vector(o.portRange.lower, o.portRange.upper), "spark_init_mode" -> o.sparkInitMode,
      "kernel_ip" -> o.kernelIp, "launch_token" -> o.launchToken)
  }

  private def expected(c: Obj): Obj = obj(c, "expect").map {
    case ("response_port", v)  => "response_port" -> Json.int(Map("v" -> v), "v").get
    case ("port_range", v)     => "port_range" -> v.asInstanceOf[Vector[Any]].map(x => Json.int(Map("v" -> x), "v").get)
    case (k, v)                => k -> v
  }

  private def refusal(body: => Any): String =
    try { body; throw new AssertionError("accepted") }
    catch { case e: Options.UsageError => e.getMessage }

  def main(args: Array[String]): Unit = {
    val v = Json.parseObject(new String(Files.readAllBytes(Paths.get(args(0))), UTF_8))

    check("vectors file is contract v2") { expectEq("version", n(v, "version"), 2) }
    check("spark modes") { expectEq("modes", Options.SparkModes.toVector, list(v, "spark_init_modes")) }
    check("token file size limit") { expectEq("bytes", Options.MaxTokenFileBytes, n(obj(v, "launch_token"), "max_file_bytes")) }
    check("port count and tries per port") {
      expectEq("count", Ports.PortCount, n(obj(v, "ports"), "count"))
      expectEq("tries", Ports.TriesPerPort, n(obj(v, "ports"), "tries_per_port"))
    }
    check("report connect window and timeouts") {
      val r = obj(v, "report")
      expectEq("window", Report.ConnectWindowMillis, n(r, "connect_window") * 1000)
      expectEq("connect", Report.ConnectTimeoutMillis, n(r, "connect_timeout") * 1000)
      expectEq("reply", Report.ReplyTimeoutMillis, n(r, "reply_timeout") * 1000)
    }
    check("a full range fails after the contract's tries") {
      val lo = InetAddress.getLoopbackAddress
      val holder = new java.net.ServerSocket()
      holder.setReuseAddress(false)
      holder.bind(new InetSocketAddress(lo, 0))
      val full = PortRange(holder.getLocalPort, holder.getLocalPort)
      try {
        Ports.reserve(lo, full, 1, Set.empty, new SecureRandom())
        throw new AssertionError("picked a taken port")
      } catch {
        case e: IllegalStateException =>
          if (!e.getMessage.contains(s"after ${n(obj(v, "ports"), "tries_per_port")} tries")) throw e
      } finally holder.close()
    }

    val ranges = obj(v, "port_ranges")
    ranges("valid").asInstanceOf[Vector[Obj]].foreach { c =>
      check(s"port range accepted: ${Json.encode(Seq("text" -> s(c, "text")))}") {
        expectEq("bounds", PortRange.parse(Some(s(c, "text"))), PortRange(n(c, "lower"), n(c, "upper")))
      }
    }
    val base = Map("KERNEL_ID" -> "k", "RESPONSE_ADDRESS" -> "h:1", "PUBLIC_KEY" -> "QUJD", "LAUNCH_TOKEN" -> "t")
    ranges("invalid").asInstanceOf[Vector[Obj]].foreach { c =>
      check(s"port range refused: ${s(c, "why")}") {
        val message = refusal(Options.parse(Array(s"--port-range=${s(c, "text")}"), base.get))
        if (!message.startsWith("--port-range / PORT_RANGE") || !message.contains(s(c, "error")))
          throw new AssertionError(message)
      }
    }

    list(v, "resolve").map(_.asInstanceOf[Obj]).foreach { c =>
      if (c.contains("expect")) check(s"resolves: ${s(c, "why")}") {
        expectEq("values", observed(parse(c)), expected(c))
      }
      else check(s"refuses: ${s(c, "why")}") {
        val message = refusal(parse(c))
        list(c, "error").foreach(p => if (!message.contains(p.toString)) throw new AssertionError(s"'$p' not in: $message"))
      }
    }

    finish()
  }
}
