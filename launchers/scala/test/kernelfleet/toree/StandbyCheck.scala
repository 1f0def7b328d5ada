package kernelfleet.toree

import java.nio.charset.StandardCharsets.UTF_8
import java.nio.file.{Files, Paths}
import java.security.SecureRandom

/** Checks the launcher's standby code (Standby.scala) against docs/protocol-vectors-2.1.json; run by
 * tests/launchers/test_scala_launcher.py.
 *
 * Usage: StandbyCheck <protocol-vectors-2.1.json>. Prints `ok NAME` / `FAIL NAME: why` per check, plus `REGISTRATION
 * <line>` (the vectors' registration sealed with real randomness, for the Python server code to open). Exits 1 if any
 * check failed.
 */
object StandbyCheck extends Checks {
  private def unhex(s: String): Array[Byte] = s.grouped(2).map(Integer.parseInt(_, 16).toByte).toArray

  def main(args: Array[String]): Unit = {
    val vectors = Json.parseObject(new String(Files.readAllBytes(Paths.get(args(0))), UTF_8))
    val reg = obj(vectors, "registration")
    val claim = obj(vectors, "claim")
    val publicKey = Protocol.loadPublicKey(s(vectors, "public_key"))
    val sid = s(reg, "standby_id")
    val pool = s(reg, "pool")
    val claimKey = unhex(s(reg, "claim_key_hex"))
    val nonce = unhex(s(reg, "nonce_hex"))
    def verifier(id: String = sid, key: Array[Byte] = claimKey, n: Array[Byte] = nonce) =
      new Standby.ClaimVerifier(id, pool, key, n)

    check("registration line reproduced byte for byte") {
      val line = Standby.sealRegistration(sid, pool, s(reg, "token"), claimKey, nonce, publicKey,
        Json.int(reg, "pid").map(_.toLong), s(reg, "launcher"), unhex(s(reg, "aes_key_hex")), unhex(s(reg, "mac_key_hex")),
        unhex(s(reg, "iv_hex")), new VectorCheck.FixedSeed(unhex(s(reg, "oaep_seed_hex"))))
      expectEq("line", line, s(reg, "line") + "\n")
    }

    check("fresh registration sealed with SecureRandom") {
      val random = new SecureRandom()
      val line = Standby.sealRegistration(sid, pool, s(reg, "token"), claimKey, nonce, publicKey, Some(4242L),
        ToreeLauncher.LauncherVersion, Protocol.randomBytes(random, 32), Protocol.randomBytes(random, 32),
        Protocol.randomBytes(random, 16), random)
      if (line == s(reg, "line") + "\n") throw new AssertionError("a fresh registration equals the fixed vector")
      print(s"REGISTRATION $line")
    }

    check("claim vector opens with its kernel id, token, env, working dir and port range") {
      val c = verifier().open(s(claim, "line"))
      expectEq("kernel_id", c.kernelId, s(claim, "kernel_id"))
      expectEq("launch_token", c.launchToken, s(claim, "launch_token"))
      expectEq("env", c.env, obj(claim, "env"))
      expectEq("working_dir", c.workingDir, Json.str(claim, "working_dir"))
      expectEq("port_range", c.portRange, s(claim, "port_range"))
      if (c.toString.contains(c.launchToken)) throw new AssertionError("the token is in the claim's toString")
    }

    check("a replayed claim is refused") {
      val v = verifier()
      v.open(s(claim, "line"))
      expectClaimError(v.open(s(claim, "line")), "claimed already")
    }

    check("a second claim is refused, even a different one") {
      val v = verifier()
      v.open(s(claim, "line"))
      val second = vectors("reject_claims").asInstanceOf[Vector[Map[String, Any]]].head
      expectClaimError(v.open(s(second, "line")), "claimed already")
    }

    vectors("reject_claims").asInstanceOf[Vector[Map[String, Any]]].foreach { r =>
      check(s"reject: ${s(r, "why")}") {
        val v = verifier()
        expectClaimError(v.open(s(r, "line")), "")
        if (v.claimed) throw new AssertionError("a refused claim used up the standby")
        expectEq("the real claim still opens", v.open(s(claim, "line")).kernelId, s(claim, "kernel_id"))
      }
    }

    check("a claim for one standby is refused by another") {
      expectClaimError(verifier(id = "standby-other").open(s(claim, "line")), "another pool or standby")
    }

    check("a claim is refused under another claim key or nonce") {
      val otherKey = claimKey.clone(); otherKey(40) = (otherKey(40) ^ 1).toByte
      expectClaimError(verifier(key = otherKey).open(s(claim, "line")), "MAC does not verify")
      val otherNonce = nonce.clone(); otherNonce(0) = (otherNonce(0) ^ 1).toByte
      expectClaimError(verifier(n = otherNonce).open(s(claim, "line")), "MAC does not verify")
    }

    check("hostile claim lines are refused without acting") {
      val good = s(claim, "line")
      Seq("", "not json", "{}", "[]", good.replace("\"minor\":1", "\"minor\":0"),
        good.replace("\"mac\":\"", "\"mac\":\"A"), good + " " * Standby.MaxClaimBytes
      ).foreach { line =>
        val v = verifier()
        expectClaimError(v.open(line), "")
        if (v.claimed) throw new AssertionError(s"claimed by ${line.take(40)}")
      }
    }

    check("claim answers") {
      expectEq("ok", Standby.answer(None), "{\"ok\":true}\n")
      expectEq("refused", Standby.answer(Some("claim MAC does not verify")),
        "{\"ok\":false,\"error\":\"claim MAC does not verify\"}\n")
    }

    finish()
  }

  private def expectClaimError(body: => Any, fragment: String): Unit =
    try { body; throw new AssertionError("accepted") }
    catch {
      case e: Standby.ClaimError =>
        if (!e.getMessage.contains(fragment)) throw new AssertionError(s"refused for '${e.getMessage}', not '$fragment'")
    }
}
