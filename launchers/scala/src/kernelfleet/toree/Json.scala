package kernelfleet.toree

import scala.collection.immutable.ListMap

/** A tiny strict JSON codec of our own.
 *
 * Why not a library: the Toree assembly ships Jackson 2.10 and Spark ships Jackson 2.15, and which one wins depends
 * on the class path spark-submit builds. Protocol messages are small and flat, so a hand-written codec is safer than
 * betting on a class path. The encoder writes exactly what Python's `json.dumps(obj, separators=(",", ":"),
 * ensure_ascii=True)` writes, so a report line is byte-for-byte comparable with the test vectors.
 */
object Json {

  /** Thrown for anything that is not one well-formed JSON value. The message never quotes the input. */
  final class JsonError(message: String) extends IllegalArgumentException(message)

  /** Compact JSON of an ordered object; values are String, Int, Long, Boolean, null or a nested ordered object. */
  def encode(fields: Seq[(String, Any)]): String = {
    val sb = new java.lang.StringBuilder
    writeObject(sb, fields)
    sb.toString
  }

  private def writeObject(sb: java.lang.StringBuilder, fields: Seq[(String, Any)]): Unit = {
    sb.append('{')
    var first = true
    for ((k, v) <- fields) {
      if (!first) sb.append(',')
      first = false
      writeString(sb, k)
      sb.append(':')
      writeValue(sb, v)
    }
    sb.append('}')
  }

  private def writeValue(sb: java.lang.StringBuilder, value: Any): Unit = value match {
    case null                          => sb.append("null")
    case s: String                     => writeString(sb, s)
    case b: Boolean                    => sb.append(if (b) "true" else "false")
    case i: Int                        => sb.append(i)
    case l: Long                       => sb.append(l)
    case m: ListMap[_, _]              => writeObject(sb, m.toSeq.map { case (k, v) => (k.toString, v) })
    case s: Seq[_] if s.forall(isPair) => writeObject(sb, s.map { case (k: String, v) => (k, v) })
    case other                         => throw new JsonError(s"cannot encode a ${other.getClass.getSimpleName}")
  }

  private def isPair(x: Any): Boolean = x match {
    case (_: String, _) => true
    case _              => false
  }

  private def writeString(sb: java.lang.StringBuilder, s: String): Unit = {
    sb.append('"')
    var i = 0
    while (i < s.length) {
      val c = s.charAt(i)
      c match {
        case '"'  => sb.append("\\\"")
        case '\\' => sb.append("\\\\")
        case '\n' => sb.append("\\n")
        case '\r' => sb.append("\\r")
        case '\t' => sb.append("\\t")
        case '\b' => sb.append("\\b")
        case '\f' => sb.append("\\f")
        case _ if c < 0x20 || c > 0x7e =>
          // Python escapes everything outside ' '..'~' (DEL included) as a six-character escape per UTF-16 unit, lower-case hex.
          sb.append("\\u").append(String.format("%04x", Integer.valueOf(c.toInt)))
        case _ => sb.append(c)
      }
      i += 1
    }
    sb.append('"')
  }

  /** Parse one JSON object. Objects become ListMap (order kept), numbers BigDecimal, and duplicate keys are refused
   * so that what we verify is what we act on. */
  def parseObject(text: String): ListMap[String, Any] = {
    val p = new Parser(text)
    p.skipWs()
    val v = p.value(0)
    p.skipWs()
    if (!p.atEnd) throw new JsonError("trailing characters after the JSON value")
    v match {
      case m: ListMap[_, _] => m.asInstanceOf[ListMap[String, Any]]
      case _                => throw new JsonError("JSON value is not an object")
    }
  }

  /** Helpers that read typed fields without throwing ClassCastException. */
  def str(obj: Map[String, Any], key: String): Option[String] = obj.get(key).collect { case s: String => s }

  def bool(obj: Map[String, Any], key: String): Option[Boolean] = obj.get(key).collect { case b: Boolean => b }

  def int(obj: Map[String, Any], key: String): Option[Int] = obj.get(key).collect {
    case n: BigDecimal if n.isValidInt => n.toIntExact
  }

  private final class Parser(s: String) {
    private var pos = 0
    private val MaxDepth = 32

    def atEnd: Boolean = pos >= s.length

    def skipWs(): Unit = while (pos < s.length && " \t\r\n".indexOf(s.charAt(pos)) >= 0) pos += 1

    private def fail(what: String): Nothing = throw new JsonError(s"malformed JSON at offset $pos: $what")

    private def expect(c: Char): Unit = {
      if (pos >= s.length || s.charAt(pos) != c) fail(s"expected '$c'")
      pos += 1
    }

    def value(depth: Int): Any = {
      if (depth > MaxDepth) fail("nested too deeply")
      if (atEnd) fail("unexpected end")
      s.charAt(pos) match {
        case '{'                                   => obj(depth)
        case '['                                   => arr(depth)
        case '"'                                   => string()
        case 't'                                   => literal("true", true)
        case 'f'                                   => literal("false", false)
        case 'n'                                   => literal("null", null)
        case c if c == '-' || (c >= '0' && c <= '9') => number()
        case _                                     => fail("unexpected character")
      }
    }

    private def literal(word: String, v: Any): Any = {
      if (!s.startsWith(word, pos)) fail("bad literal")
      pos += word.length
      v
    }

    private def obj(depth: Int): ListMap[String, Any] = {
      expect('{')
      var out = ListMap.empty[String, Any]
      skipWs()
      if (!atEnd && s.charAt(pos) == '}') { pos += 1; return out }
      var more = true
      while (more) {
        skipWs()
        if (atEnd || s.charAt(pos) != '"') fail("expected a key")
        val k = string()
        if (out.contains(k)) fail("duplicate key")
        skipWs(); expect(':'); skipWs()
        out = out.updated(k, value(depth + 1))
        skipWs()
        if (atEnd) fail("unterminated object")
        s.charAt(pos) match {
          case ',' => pos += 1
          case '}' => pos += 1; more = false
          case _   => fail("expected ',' or '}'")
        }
      }
      out
    }

    private def arr(depth: Int): Vector[Any] = {
      expect('[')
      var out = Vector.empty[Any]
      skipWs()
      if (!atEnd && s.charAt(pos) == ']') { pos += 1; return out }
      var more = true
      while (more) {
        skipWs()
        out :+= value(depth + 1)
        skipWs()
        if (atEnd) fail("unterminated array")
        s.charAt(pos) match {
          case ',' => pos += 1
          case ']' => pos += 1; more = false
          case _   => fail("expected ',' or ']'")
        }
      }
      out
    }

    private def string(): String = {
      expect('"')
      val sb = new java.lang.StringBuilder
      while (true) {
        if (atEnd) fail("unterminated string")
        val c = s.charAt(pos)
        pos += 1
        c match {
          case '"' => return sb.toString
          case '\\' =>
            if (atEnd) fail("unterminated escape")
            val e = s.charAt(pos)
            pos += 1
            e match {
              case '"'  => sb.append('"')
              case '\\' => sb.append('\\')
              case '/'  => sb.append('/')
              case 'b'  => sb.append('\b')
              case 'f'  => sb.append('\f')
              case 'n'  => sb.append('\n')
              case 'r'  => sb.append('\r')
              case 't'  => sb.append('\t')
              case 'u' =>
                if (pos + 4 > s.length) fail("short \\u escape")
                val hex = s.substring(pos, pos + 4)
                if (!hex.forall(h => Character.digit(h, 16) >= 0)) fail("bad \\u escape")
                sb.append(Integer.parseInt(hex, 16).toChar)
                pos += 4
              case _ => fail("bad escape")
            }
          case _ if c < 0x20 => fail("control character in string")
          case _             => sb.append(c)
        }
      }
      fail("unreachable")
    }

    private def number(): BigDecimal = {
      val start = pos
      if (s.charAt(pos) == '-') pos += 1
      def digits(): Int = { val b = pos; while (!atEnd && Character.isDigit(s.charAt(pos)) && s.charAt(pos) < 128) pos += 1; pos - b }
      if (atEnd) fail("bad number")
      if (s.charAt(pos) == '0') pos += 1 else if (digits() == 0) fail("bad number")
      if (!atEnd && s.charAt(pos) == '.') { pos += 1; if (digits() == 0) fail("bad fraction") }
      if (!atEnd && (s.charAt(pos) == 'e' || s.charAt(pos) == 'E')) {
        pos += 1
        if (!atEnd && (s.charAt(pos) == '+' || s.charAt(pos) == '-')) pos += 1
        if (digits() == 0) fail("bad exponent")
      }
      if (pos - start > 64) fail("number too long")
      BigDecimal(s.substring(start, pos))
    }
  }
}
