package kernelfleet.toree

import java.time.Instant

/** A stderr logger with a level from LOG_LEVEL.
 *
 * Why not log4j: Spark owns the log4j configuration of this JVM and would route or silence our lines; the launcher's
 * few lifecycle lines must always reach the container log. Callers never pass secrets here.
 */
object Log {
  private val levels = Map("DEBUG" -> 10, "INFO" -> 20, "WARNING" -> 30, "WARN" -> 30, "ERROR" -> 40, "CRITICAL" -> 50)
  @volatile private var threshold: Int = 20

  def configure(level: Option[String]): Unit =
    threshold = level.flatMap(l => levels.get(l.trim.toUpperCase)).getOrElse(20)

  def debug(msg: => String): Unit = emit(10, "DEBUG", msg)
  def info(msg: => String): Unit = emit(20, "INFO", msg)
  def warn(msg: => String): Unit = emit(30, "WARNING", msg)
  def error(msg: => String): Unit = emit(40, "ERROR", msg)

  private def emit(level: Int, name: String, msg: => String): Unit =
    if (level >= threshold) System.err.println(s"[$name ${Instant.now()} kernelfleet-toree] $msg")
}
