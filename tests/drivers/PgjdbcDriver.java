// pgjdbc through the sidecar across switches: server-side prepared statements
// (prepareThreshold=1), enum parameters sent with the enum's OID in Parse (pgjdbc looks the
// OID up by name and caches it), a composite with an enum field and arrays as text, a batch,
// LISTEN/NOTIFY read while idle, COPY, a cancelled query (statement timeout) and a
// transaction open when a switch is asked for.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.StringReader;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import org.postgresql.PGConnection;
import org.postgresql.PGNotification;
import org.postgresql.copy.CopyManager;
import org.postgresql.util.PGobject;

public class PgjdbcDriver {
    static final BufferedReader IN = new BufferedReader(new InputStreamReader(System.in));

    static String ask(String line) throws Exception {
        System.out.println(line);
        System.out.flush();
        String answer = IN.readLine();
        if (answer == null) throw new IllegalStateException("the test did not answer " + line);
        return answer.substring(answer.lastIndexOf(' ') + 1);
    }

    static void check(boolean ok, Object what) {
        if (!ok) throw new AssertionError(String.valueOf(what));
    }

    /** A type first met away from home: pgjdbc looks its name up by OID (bound as int4)
     * for the column's type name, and an OID read by name must be the home one. */
    static void meetLevel(Connection conn, int homeLevel) throws SQLException {
        try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery("SELECT 'high'::level AS l")) {
            check(rs.next() && rs.getString(1).equals("high"), "a level");
            String name = rs.getMetaData().getColumnTypeName(1);
            check(name.equals("level"), name);
        }
        try (PreparedStatement ps = conn.prepareStatement("SELECT oid FROM pg_catalog.pg_type WHERE typname = ?")) {
            ps.setString(1, "level");
            try (ResultSet rs = ps.executeQuery()) {
                check(rs.next() && rs.getLong(1) == homeLevel, "level's OID by name");
            }
        }
        try (PreparedStatement ps = conn.prepareStatement("SELECT typname FROM pg_catalog.pg_type WHERE oid = ?")) {
            ps.setInt(1, homeLevel);
            try (ResultSet rs = ps.executeQuery()) {
                check(rs.next() && rs.getString(1).equals("level"), "level by its home OID");
            }
        }
        try (PreparedStatement ps = conn.prepareStatement("SELECT ?::text")) {
            PGobject level = new PGobject();
            level.setType("level");
            level.setValue("low");
            ps.setObject(1, level);
            try (ResultSet rs = ps.executeQuery()) {
                check(rs.next() && rs.getString(1).equals("low"), "a level parameter");
            }
        }
    }

    static PGobject mood(String value) throws SQLException {
        PGobject o = new PGobject();
        o.setType("mood");
        o.setValue(value);
        return o;
    }

    public static void main(String[] args) throws Exception {
        String url = args[0], tag = args[1];
        int homeLevel = Integer.parseInt(System.getenv("PGFLIP_HOME_LEVEL_OID"));
        Connection conn = DriverManager.getConnection(url + "&prepareThreshold=1");
        conn.setAutoCommit(true);
        try (Statement st = conn.createStatement()) {
            st.execute("LISTEN driver_" + tag);
        }
        List<String> sides = new ArrayList<>();
        List<String> notes = new ArrayList<>();
        for (int round = 0; round < 4; round++) {
            if (round == 1) meetLevel(conn, homeLevel);
            try (PreparedStatement ps = conn.prepareStatement("SELECT m, p, s, ms FROM readings WHERE id = ? AND m = ?")) {
                ps.setInt(1, 1);
                ps.setObject(2, mood("happy"));
                try (ResultSet rs = ps.executeQuery()) {
                    check(rs.next(), "a row");
                    check(rs.getString(1).equals("happy") && rs.getString(2).equals("(ok,7)") && rs.getInt(3) == 3, rs.getString(2));
                    check(rs.getArray(4).toString().equals("{sad,happy}"), rs.getArray(4));
                }
            }
            try (PreparedStatement ps = conn.prepareStatement("INSERT INTO readings (m, p, who) VALUES (?, ?::pair, ?)")) {
                ps.setObject(1, mood("ok"));
                ps.setString(2, "(sad," + round + ")");
                ps.setString(3, tag);
                check(ps.executeUpdate() == 1, "inserted");
            }
            try (PreparedStatement ps = conn.prepareStatement("INSERT INTO plain (who, n) VALUES (?, ?)")) {
                for (int i = 0; i < 5; i++) {
                    ps.setString(1, tag);
                    ps.setInt(2, i);
                    ps.addBatch();
                }
                ps.executeBatch();
            }
            CopyManager copy = conn.unwrap(PGConnection.class).getCopyAPI();
            StringBuilder rows = new StringBuilder();
            for (int i = 0; i < 5; i++) rows.append(tag).append('\t').append(100 * round + i).append('\n');
            check(copy.copyIn("COPY plain (who, n) FROM STDIN", new StringReader(rows.toString())) == 5, "copied");
            try (Statement st = conn.createStatement()) {
                st.execute("NOTIFY driver_" + tag + ", 'round " + round + "'");
                st.setQueryTimeout(1);
                boolean cancelled = false;
                try {
                    st.execute("SELECT pg_sleep(5)");
                } catch (SQLException e) {
                    cancelled = "57014".equals(e.getSQLState());
                }
                check(cancelled, "the sleep was cancelled");
                st.setQueryTimeout(0);
                try (ResultSet rs = st.executeQuery("SELECT 1")) {
                    check(rs.next() && rs.getInt(1) == 1, "usable after the cancel");
                }
            }
            sides.add(ask("SWITCH"));
            // Notifications read while idle: nothing else may reach an idle connection.
            PGNotification[] got = conn.unwrap(PGConnection.class).getNotifications(200);
            if (got != null) for (PGNotification n : got) notes.add(n.getParameter());
        }
        conn.setAutoCommit(false);
        try (Statement st = conn.createStatement()) {
            st.execute("INSERT INTO plain (who, n) VALUES ('" + tag + "', -1)");
            ask("SWITCH_BEGIN");
            Thread.sleep(500);
        }
        conn.commit();
        conn.setAutoCommit(true);
        sides.add(ask("SWITCH_WAIT"));
        PGNotification[] got = conn.unwrap(PGConnection.class).getNotifications(500);
        if (got != null) for (PGNotification n : got) notes.add(n.getParameter());
        check(notes.equals(List.of("round 0", "round 1", "round 2", "round 3")), notes);
        conn.close();
        System.out.println("DONE " + String.join(",", sides));
    }
}
