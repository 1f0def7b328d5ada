package kernelfleet.toree

import java.nio.file.{Files, Paths}

/** Gives this JVM, after it started, the environment and working directory a claimed kernel must have
 * (docs/protocol.md section 8: applied before the kernel runs any code). A JVM has no setenv and no chdir: the
 * environment goes into the map behind System.getenv (which ProcessBuilder copies for children too), the working
 * directory through libc's chdir (JDK 17's jdk.incubator.foreign, by reflection) plus the JDK's cached copies of it.
 *
 * Needs the JVM options run.sh adds in standby mode (--add-opens for java.util, java.io and sun.nio.fs, the incubator
 * module and native access); Standby.awaitClaim calls `apply` and refuses
 * the claim with the returned reason when it cannot, so the kernel starts cold rather than in the wrong place.
 */
object ProcessState {
  /** Removed from the kernel's view of the environment: the kernel never sees the standby's own values. */
  private val StandbyOnly = Seq(Standby.IdVariable, Standby.PoolVariable)

  /** None when applied; else why not (nothing applied then, or only the environment). */
  def apply(env: Map[String, String], workingDir: Option[String]): Option[String] =
    try {
      workingDir.filterNot(sameDirectory).foreach(chdir)
      val live = mutableEnvironment()
      StandbyOnly.foreach(live.remove)
      env.foreach { case (k, v) => live.put(k, v) }
      None
    } catch {
      case e: ReflectiveOperationException =>
        Some(s"cannot change this JVM's state (${e.getClass.getSimpleName}: ${Option(e.getCause).getOrElse(e).getMessage})")
      case e: RuntimeException => Some(s"cannot change this JVM's state (${e.getClass.getSimpleName}: ${e.getMessage})")
    }

  private def sameDirectory(dir: String): Boolean =
    scala.util.Try(Files.isSameFile(Paths.get(dir), Paths.get(System.getProperty("user.dir")))).getOrElse(false)

  /** The map System.getenv() wraps read-only (java.lang.ProcessEnvironment's StringEnvironment). */
  private def mutableEnvironment(): java.util.Map[String, String] = {
    val view = System.getenv()
    val inner = view.getClass.getDeclaredField("m")
    inner.setAccessible(true)
    inner.get(view).asInstanceOf[java.util.Map[String, String]]
  }

  private def chdir(dir: String): Unit = {
    if (!Files.isDirectory(Paths.get(dir))) throw new IllegalArgumentException(s"working directory $dir does not exist")
    val linkerClass = Class.forName("jdk.incubator.foreign.CLinker")
    val addressClass = Class.forName("jdk.incubator.foreign.MemoryAddress")
    val descriptorClass = Class.forName("jdk.incubator.foreign.FunctionDescriptor")
    val layoutClass = Class.forName("jdk.incubator.foreign.MemoryLayout")
    val scopeClass = Class.forName("jdk.incubator.foreign.ResourceScope")
    val segmentClass = Class.forName("jdk.incubator.foreign.MemorySegment")
    val linker = linkerClass.getMethod("getInstance").invoke(null)
    val lookup = linkerClass.getMethod("systemLookup").invoke(null)
    val symbol = Class.forName("jdk.incubator.foreign.SymbolLookup").getMethod("lookup", classOf[String]).invoke(lookup, "chdir")
      .asInstanceOf[java.util.Optional[AnyRef]].orElseThrow()
    val layouts = java.lang.reflect.Array.newInstance(layoutClass, 1)
    java.lang.reflect.Array.set(layouts, 0, linkerClass.getField("C_POINTER").get(null))
    val descriptor = descriptorClass.getMethod("of", layoutClass, layouts.getClass)
      .invoke(null, linkerClass.getField("C_INT").get(null), layouts)
    val handle = linkerClass.getMethod("downcallHandle", Class.forName("jdk.incubator.foreign.Addressable"),
      classOf[java.lang.invoke.MethodType], descriptorClass)
      .invoke(linker, symbol, java.lang.invoke.MethodType.methodType(Integer.TYPE, addressClass), descriptor)
      .asInstanceOf[java.lang.invoke.MethodHandle]
    val scope = scopeClass.getMethod("newConfinedScope").invoke(null).asInstanceOf[AutoCloseable]
    try {
      val cString = linkerClass.getMethod("toCString", classOf[String], scopeClass).invoke(null, dir, scope)
      val address = segmentClass.getMethod("address").invoke(cString)
      val rc = handle.invokeWithArguments(address).asInstanceOf[Integer]
      if (rc != 0) throw new IllegalStateException(s"chdir to $dir failed")
    } finally scope.close()
    // The JDK caches the directory it started in: java.io for File.getAbsolutePath, java.nio for Path.toAbsolutePath.
    System.setProperty("user.dir", dir)
    val ioFs = Class.forName("java.io.File").getDeclaredField("fs")
    ioFs.setAccessible(true)
    val io = ioFs.get(null)
    val ioDir = io.getClass.getDeclaredField("userDir")
    ioDir.setAccessible(true)
    ioDir.set(io, dir)
    val nio = java.nio.file.FileSystems.getDefault
    val nioDir = Class.forName("sun.nio.fs.UnixFileSystem").getDeclaredField("defaultDirectory")
    nioDir.setAccessible(true)
    nioDir.set(nio, dir.getBytes(java.nio.charset.StandardCharsets.UTF_8))
  }

}
