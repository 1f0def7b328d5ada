package kernelfleet.toree

/** What VectorCheck and ContractCheck share: `ok NAME` / `FAIL NAME: why` per check, the vectors' JSON accessors, and
 * an exit status that counts the failures (tests/launchers/test_scala_launcher.py reads both). */
trait Checks {
  private var failures = 0

  protected def check(name: String)(body: => Unit): Unit =
    try { body; println(s"ok $name") }
    catch {
      case e: Throwable =>
        failures += 1
        println(s"FAIL $name: ${e.getClass.getSimpleName}: ${e.getMessage}")
    }

  protected def expectEq(what: String, got: Any, want: Any): Unit =
    if (got != want) throw new AssertionError(s"$what: got $got, want $want")

  protected def obj(m: Map[String, Any], k: String): Map[String, Any] = m(k).asInstanceOf[Map[String, Any]]
  protected def s(m: Map[String, Any], k: String): String =
    Json.str(m, k).getOrElse(throw new AssertionError(s"vector field $k"))
  protected def n(m: Map[String, Any], k: String): Int =
    Json.int(m, k).getOrElse(throw new AssertionError(s"vector field $k"))

  protected def finish(): Unit = {
    System.out.flush()
    System.exit(if (failures == 0) 0 else 1)
  }
}
