package kernelfleet.toree

import java.io.{PrintWriter, Writer}
import java.util.concurrent.atomic.AtomicReference
import org.apache.toree.kernel.api.Kernel
import org.apache.toree.kernel.interpreter.scala.ScalaInterpreter
import scala.tools.nsc.Settings
import scala.tools.nsc.interpreter.IMain

/** What a warm-pool standby does before its claim (docs/warm-pools.md, "Scala"): the expensive part of a Toree start
 * that needs no kernel id, no key, no port and no user environment. Toree's Scala interpreter is a Scala compiler
 * (IMain): this builds it with the settings Toree will ask for, initialises it and runs warm-up lines through it so
 * that the compiler's classes are loaded and JIT-compiled (then empties its session), and declares Toree's interpreter bindings against a slot for the
 * kernel. After the claim Toree's interpreter (WarmScalaInterpreter, installed as Toree's "Scala" plugin) takes this
 * IMain instead of building its own and only fills the slot; what stays after the claim is Toree's kernel (actors,
 * sockets on the claimed ports, plugins and magics) and the Spark session per mode.
 *
 * ToreeLauncher calls `prepare` on its main thread (whose context class loader is the one Toree runs with).
 */
object Warmup {
  /** Toree's own default plugin list with our Scala interpreter in place of its own (Toree merges `--interpreter-plugin`
   * under the defaults, so the default list itself is replaced, through config's system-property overrides). */
  private val Plugins = Seq("Scala:" + classOf[WarmScalaInterpreter].getName,
    "SQL:org.apache.toree.kernel.interpreter.sql.SqlInterpreter")

  private final class Prepared(val imain: IMain, val args: List[String], val out: SwitchableWriter,
                               val kernelSlot: Option[AtomicReference[Kernel]])

  @volatile private var prepared: Option[Prepared] = None
  /** The slot the taken IMain's `kernel` reads, once Toree's interpreter took it. */
  @volatile private var takenSlot: Option[AtomicReference[Kernel]] = None

  /** Toree's interpreter bindings (ScalaInterpreter.bindVariables: `kernel`, `spark`, `sc`, the SQL implicits),
   * declared before the claim: `kernel` reads a slot that `bindKernel` fills when Toree's kernel exists, and nothing
   * evaluates it before (a lazy val; `spark` and `sc` are defs on it, as Toree declares them). None when a line fails:
   * Toree then binds its own way. */
  private def declareBindings(imain: IMain): Option[AtomicReference[Kernel]] = {
    val lines = Seq(
      s"@transient val $SlotName = new java.util.concurrent.atomic.AtomicReference[org.apache.toree.kernel.api.Kernel]()",
      s"@transient implicit lazy val kernel: org.apache.toree.kernel.api.Kernel = $SlotName.get",
      "def spark: org.apache.spark.sql.SparkSession = kernel.sparkSession",
      "def sc: org.apache.spark.SparkContext = kernel.sparkContext",
      """import org.apache.spark.sql.SparkSession
        |import org.apache.spark.sql.SQLContext
        |import org.apache.spark.sql.SQLImplicits
        |
        |object implicits extends SQLImplicits with Serializable {
        |  protected override def _sqlContext: SQLContext = SparkSession.builder.getOrCreate.sqlContext
        |}
        |
        |import implicits._
        |""".stripMargin)
    val results = imain.beQuietDuring(lines.map(imain.interpret))
    if (results.exists(_ != scala.tools.nsc.interpreter.Results.Success)) {
      Log.warn(s"standby warm-up: declaring Toree's bindings failed (${results.mkString(", ")}); Toree binds them")
      None
    } else imain.valueOfTerm(SlotName).collect { case slot: AtomicReference[_] => slot.asInstanceOf[AtomicReference[Kernel]] }
  }

  private val SlotName = "kernelfleetKernelSlot"

  /** Fill the declared `kernel` binding; false when Toree must bind its variables itself. */
  private[toree] def bindKernel(kernel: org.apache.toree.kernel.api.KernelLike): Boolean = (takenSlot, kernel) match {
    case (Some(slot), k: Kernel) => slot.set(k); true
    case _                       => false
  }

  /** Build, initialise and warm the compiler; afterwards a Toree started in this JVM uses it. A failure is logged
   * and leaves Toree to build its own (a slower claimed start, never a broken one). */
  def prepare(): Unit = {
    val started = System.nanoTime()
    try {
      Plugins.zipWithIndex.foreach { case (p, i) => System.setProperty(s"default_interpreter_plugin.$i", p) }
      com.typesafe.config.ConfigFactory.invalidateCaches()
      val probe = new ScalaInterpreter(com.typesafe.config.ConfigFactory.load())
      val settings = probe.appendClassPath(probe.newSettings(Nil))
      settings.usejavacp.value = true
      val out = new SwitchableWriter
      val imain = new IMain(settings, new PrintWriter(out, true))
      imain.initializeSynchronous()
      step("compiler initialised", started)
      // Cells go through interpret (wrapping, compiling, loading and running each line); reset() then empties the
      // session (no names, line numbers from 1 again) and keeps the warmed compiler.
      val lines = imain.beQuietDuring(WarmupLines.map(imain.interpret))
      if (lines.exists(_ != scala.tools.nsc.interpreter.Results.Success))
        Log.warn(s"standby warm-up: a warm-up line did not run (${lines.mkString(", ")})")
      imain.reset()
      step("compiler warmed", started)
      prepared = Some(new Prepared(imain, settings.recreateArgs, out, declareBindings(imain)))
      step("bindings declared", started)
    } catch {
      case e: Exception =>
        Log.warn(s"standby warm-up failed (${e.getClass.getSimpleName}: ${e.getMessage}); Toree will start its own compiler")
    }
    warmToreeKernel()
    // The warm-up's garbage (a class-path scan, compiled lines) would otherwise stay in the heap of a standby that
    // may wait for hours: a full collection lets the JVM give those pages back before it registers.
    System.gc()
    Log.info(s"standby warm-up: done in ${(System.nanoTime() - started) / 1000000} ms")
  }

  private def step(what: String, since: Long): Unit =
    Log.debug(s"standby warm-up: $what after ${(System.nanoTime() - since) / 1000000} ms")

  /** What Toree's kernel start does before its sockets that is shared by the whole JVM or only needs its code loaded
   * and compiled: Scala's runtime reflection (a JVM-wide singleton), an actor system started and stopped, the message
   * JSON library, and the class-path scan of Toree's plugin search. Each is best effort. */
  private def warmToreeKernel(): Unit = {
    def attempt(what: String)(body: => Unit): Unit = {
      val t = System.nanoTime()
      try { body; step(what, t) }
      catch { case e: Exception => Log.debug(s"standby warm-up: $what failed (${e.getClass.getSimpleName}: ${e.getMessage})") }
    }
    attempt("runtime reflection") {
      val mirror = scala.reflect.runtime.universe.runtimeMirror(Thread.currentThread.getContextClassLoader)
      mirror.classSymbol(classOf[WarmScalaInterpreter]).typeSignature.members.size
    }
    attempt("actor system") {
      val system = akka.actor.ActorSystem("kernelfleet-warmup")
      scala.concurrent.Await.result(system.terminate(), scala.concurrent.duration.Duration(30, "s"))
    }
    attempt("message JSON") {
      play.api.libs.json.Json.stringify(play.api.libs.json.Json.parse(
        """{"header":{"msg_id":"a","username":"u","session":"s","msg_type":"execute_request","version":"5.0"},"parent_header":{},"metadata":{},"content":{"code":"1+1","silent":false}}"""))
    }
    attempt("plugin class-path scan") { new org.apache.toree.plugins.PluginSearcher().internal.size }
  }

  /** The prepared IMain for Toree's interpreter, once, if Toree asks for the same settings; output goes to `out`. */
  private[toree] def take(settings: Settings, out: PrintWriter): Option[IMain] = synchronized {
    val taken = prepared.filter(_.args == settings.recreateArgs)
    if (prepared.isDefined && taken.isEmpty) Log.info("Toree asked for other compiler settings: not using the warm compiler")
    prepared = None
    takenSlot = taken.flatMap(_.kernelSlot)
    taken.map { p => p.out.target = out; p.imain }
  }

  /** Lines like a notebook's first cells: values, imports, a case class, closures over collections, pattern matching. */
  private val WarmupLines = Seq(
    "1 + 1",
    "import scala.collection.mutable",
    "case class KernelfleetWarmup(name: String, n: Int)",
    """val kernelfleetWarmup = (1 to 10).map(i => KernelfleetWarmup(s"p$i", i * 2)).filter(_.n > 4).toList""",
    """kernelfleetWarmup.groupBy(_.n % 3).map { case (k, v) => k -> v.map(_.name).mkString(",") }""",
    """kernelfleetWarmup match { case h :: _ => h.name case Nil => "" }"""
  )

  /** The writer the prepared IMain prints to: nowhere until Toree's interpreter takes it, then Toree's own. */
  private final class SwitchableWriter extends Writer {
    @volatile var target: Writer = _
    def write(buf: Array[Char], off: Int, len: Int): Unit = Option(target).foreach(_.write(buf, off, len))
    def flush(): Unit = Option(target).foreach(_.flush())
    def close(): Unit = ()
  }
}

/** Toree's Scala interpreter, taking the compiler a standby warmed (Warmup) instead of building one. Toree instantiates
 * it by name with its config, as it does its own. */
class WarmScalaInterpreter(config: com.typesafe.config.Config) extends ScalaInterpreter(config) {
  override def newIMain(settings: Settings, out: PrintWriter): IMain =
    Warmup.take(settings, out).getOrElse(super.newIMain(settings, out))

  /** The standby declared Toree's bindings already: only the kernel is left to hand over (no line to compile). */
  override def bindVariables(): Unit = if (!Warmup.bindKernel(kernel)) super.bindVariables()
}
