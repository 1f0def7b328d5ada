package kernelfleet.toree

import java.net.{InetAddress, InetSocketAddress, ServerSocket}
import java.security.SecureRandom
import scala.util.Try

/** PORT_RANGE (`lower..upper`, inclusive; `0..0` = any free port) and port choice.
 *
 * Retries are bounded (Gateway Provisioners' Scala launcher looped forever on a full range) and the upper end is
 * included (GP's excluded it).
 */
final case class PortRange(lower: Int, upper: Int) {
  def unrestricted: Boolean = lower == 0 && upper == 0
  def size: Int = if (unrestricted) 0 else upper - lower + 1
  override def toString: String = s"$lower..$upper"
}

object PortRange {
  val MinPort = 1024
  val MaxPort = 65535
  /** docs/protocol.md section 5: each end 1-5 ASCII digits (toInt alone also took '+1024' and other scripts' digits). */
  private val Grammar = "([0-9]{1,5})\\.\\.([0-9]{1,5})".r
  /** Blanks around the whole value are ignored (String.trim would also drop control characters). */
  private val Blanks = "^[ \t\r\n]+|[ \t\r\n]+$"

  /** The launcher's --port-range / PORT_RANGE; the cases all three launchers must agree on are
   * docs/protocol-vectors.json "port_ranges". */
  def parse(text: Option[String]): PortRange = text.map(_.replaceAll(Blanks, "")).filter(t => t.nonEmpty && t != "0..0") match {
    case None => PortRange(0, 0)
    case Some(t) =>
      val (lo, hi) = t match {
        case Grammar(lower, upper) => (lower.toInt, upper.toInt)
        case _ => throw new IllegalArgumentException(
          s"port range '$t' must look like 'lower..upper' with both ends written in digits 0-9, e.g. '40000..41000'")
      }
      if (!(MinPort <= lo && lo <= hi && hi <= MaxPort))
        throw new IllegalArgumentException(s"port range '$t': need $MinPort <= lower <= upper <= $MaxPort")
      PortRange(lo, hi)
  }
}

object Ports {
  val MaxAttemptsPerPort = 200

  /** A listening socket on a free port: bound to 0 when unrestricted, else to random ports inside the range. */
  def listen(bindAddress: InetAddress, range: PortRange, taken: Set[Int], random: SecureRandom): ServerSocket = {
    def tryBind(port: Int): Option[ServerSocket] = {
      val s = new ServerSocket()
      s.setReuseAddress(false)
      Try(s.bind(new InetSocketAddress(bindAddress, port), 50)).toOption.map(_ => s).orElse { s.close(); None }
    }
    if (range.unrestricted) {
      // Port 0: the OS picks; it never repeats a port already bound by this process, but a port probed and released
      // earlier could come back, so skip those.
      Iterator.continually(tryBind(0)).take(MaxAttemptsPerPort).flatten.find { s =>
        if (taken.contains(s.getLocalPort)) { s.close(); false } else true
      }.getOrElse(throw new IllegalStateException("no free port found"))
    } else {
      val attempts = math.min(MaxAttemptsPerPort, range.size * 4)
      Iterator
        .continually(range.lower + random.nextInt(range.size))
        .take(attempts)
        .filterNot(taken.contains)
        .flatMap(tryBind)
        .toStream
        .headOption
        .getOrElse(throw new IllegalStateException(s"no free port in $range after $attempts attempts"))
    }
  }

  /** `count` distinct free port numbers; the probe sockets are closed so Toree can bind the ports itself. */
  def pick(bindAddress: InetAddress, range: PortRange, count: Int, taken: Set[Int], random: SecureRandom): Seq[Int] = {
    val sockets = scala.collection.mutable.ArrayBuffer.empty[ServerSocket]
    try {
      (1 to count).foreach { _ =>
        sockets += listen(bindAddress, range, taken ++ sockets.map(_.getLocalPort), random)
      }
      sockets.map(_.getLocalPort).toVector
    } finally sockets.foreach(s => Try(s.close()))
  }
}
