// A small HTTP service with a slow start, as a serverless Java function has: it loads a few
// thousand JDK classes and builds a large in-memory map before it answers. GET / answers with a
// digest of that state, the instance's pid and a request counter, so a snapshot that lost any of
// it answers wrongly; GET /random answers 16 bytes from SecureRandom in hex.
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.file.FileSystem;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Collectors;
import java.util.stream.Stream;

public class SnapHttp {
	static final Map<Integer, String> table = new HashMap<>();
	static final AtomicLong requests = new AtomicLong();
	static long digest;
	static int classesLoaded;
	static final SecureRandom random = new SecureRandom();

	// Loads the public classes of a few large JDK modules (found through the jrt file system), as
	// a framework's start-up does.
	static int loadClasses() throws IOException {
		String[] modules = { "java.base", "java.xml", "java.sql", "java.logging", "java.management",
				"java.net.http", "java.naming" };
		FileSystem jrt = FileSystems.getFileSystem(URI.create("jrt:/"));
		int n = 0;
		for (String name : modules) {
			Path root = jrt.getPath("/modules", name);
			if (!Files.isDirectory(root))
				continue;
			List<String> names;
			try (Stream<Path> files = Files.walk(root)) {
				names = files.map(p -> root.relativize(p).toString())
						.filter(p -> p.endsWith(".class") && p.startsWith("java") && !p.contains("$")
								&& !p.equals("module-info.class"))
						.map(p -> p.substring(0, p.length() - 6).replace('/', '.'))
						.collect(Collectors.toList());
			}
			for (String cls : names) {
				try {
					Class.forName(cls, true, ClassLoader.getSystemClassLoader());
					n++;
				} catch (Throwable e) {
					// Some classes refuse to initialize on a headless JVM: skipped.
				}
			}
		}
		return n;
	}

	static void answer(HttpExchange ex, int code, String body) throws IOException {
		byte[] b = body.getBytes(StandardCharsets.UTF_8);
		ex.sendResponseHeaders(code, b.length);
		try (OutputStream out = ex.getResponseBody()) {
			out.write(b);
		}
	}

	public static void main(String[] args) throws Exception {
		int port = Integer.parseInt(args[0]);
		int entries = args.length > 1 ? Integer.parseInt(args[1]) : 2_000_000;
		classesLoaded = loadClasses();
		long d = 0;
		for (int i = 0; i < entries; i++) {
			String v = Integer.toHexString(i * 2654435761L > 0 ? (int) (i * 2654435761L) : i);
			table.put(i, v);
			d = d * 31 + v.hashCode();
		}
		digest = d;
		HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 64);
		server.createContext("/", ex -> {
			long n = requests.incrementAndGet();
			long check = 0;
			for (int i = 0; i < table.size(); i += 997)
				check = check * 31 + table.get(i).hashCode();
			answer(ex, 200, "java-http entries=" + table.size() + " digest=" + digest + " check=" + check
					+ " classes=" + classesLoaded + " pid=" + ProcessHandle.current().pid() + " requests=" + n
					+ "\n");
		});
		server.createContext("/random", ex -> {
			byte[] b = new byte[16];
			random.nextBytes(b);
			answer(ex, 200, HexFormat.of().formatHex(b) + "\n");
		});
		server.setExecutor(Executors.newFixedThreadPool(4));
		server.start();
		System.out.println("java-http listening on 127.0.0.1:" + port);
	}
}
