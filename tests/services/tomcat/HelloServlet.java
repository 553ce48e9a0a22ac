// The servlet of the Tomcat service: its start-up builds an in-memory table (as an application
// context would); GET / answers with a digest of it, the pid and a request counter, so a
// snapshot that lost any of it answers wrongly; GET /random answers 16 bytes from SecureRandom in hex.
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.security.SecureRandom;
import java.util.HexFormat;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicLong;

public class HelloServlet extends HttpServlet {
	private final TreeMap<String, Integer> table = new TreeMap<>();
	private final AtomicLong requests = new AtomicLong();
	private long digest;
	private final SecureRandom random = new SecureRandom();

	@Override
	public void init() {
		long d = 0;
		for (int i = 0; i < 300_000; i++) {
			String k = Long.toString(i * 2654435761L, 36);
			table.put(k, i);
			d = d * 31 + k.hashCode();
		}
		digest = d;
	}

	@Override
	protected void doGet(HttpServletRequest req, HttpServletResponse resp) throws IOException {
		resp.setContentType("text/plain");
		if (req.getRequestURI().equals("/random")) {
			byte[] b = new byte[16];
			random.nextBytes(b);
			resp.getWriter().print(HexFormat.of().formatHex(b) + "\n");
			return;
		}
		long n = requests.incrementAndGet();
		resp.getWriter().print("tomcat entries=" + table.size() + " digest=" + digest + " first=" + table.firstKey()
				+ " pid=" + ProcessHandle.current().pid() + " requests=" + n + "\n");
	}
}
