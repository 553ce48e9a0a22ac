// The servlet of the Tomcat service: its start-up builds an in-memory table (as an application
// context would); GET / answers with a digest of it, the pid and a request counter, so a
// snapshot that lost any of it answers wrongly.
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicLong;

public class HelloServlet extends HttpServlet {
	private final TreeMap<String, Integer> table = new TreeMap<>();
	private final AtomicLong requests = new AtomicLong();
	private long digest;

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
		long n = requests.incrementAndGet();
		resp.setContentType("text/plain");
		resp.getWriter().print("tomcat entries=" + table.size() + " digest=" + digest + " first=" + table.firstKey()
				+ " pid=" + ProcessHandle.current().pid() + " requests=" + n + "\n");
	}
}
