/*
 * The independent reader in echokit's tests: HdrHistogram's own Java
 * library (Debian: libhdrhistogram-java) reads the interval logs given,
 * adds every untagged interval into one histogram and prints its total
 * count and, for each percentile asked, the range of values its bucket
 * holds (lowest and highest equivalent value), in the logs' unit:
 *
 *   java -cp hdrhistogram.jar HdrCheck.java LOG... -- 50 99
 *   count 123456
 *   p50 20480 20607
 *   p99 40960 41215
 */
import java.util.ArrayList;
import java.util.List;
import org.HdrHistogram.EncodableHistogram;
import org.HdrHistogram.Histogram;
import org.HdrHistogram.HistogramLogReader;

public class HdrCheck {
    public static void main(String[] args) throws Exception {
        List<String> logs = new ArrayList<>();
        int i = 0;
        for (; i < args.length && !args[i].equals("--"); i++)
            logs.add(args[i]);
        Histogram all = new Histogram(2);
        for (String log : logs) {
            HistogramLogReader reader = new HistogramLogReader(log);
            EncodableHistogram h;
            while ((h = reader.nextIntervalHistogram()) != null)
                if (h.getTag() == null)
                    all.add((Histogram) h);
        }
        System.out.println("count " + all.getTotalCount());
        for (i++; i < args.length; i++) {
            double p = Double.parseDouble(args[i]);
            long v = all.getValueAtPercentile(p);
            System.out.println("p" + args[i] + " " + all.lowestEquivalentValue(v)
                               + " " + all.highestEquivalentValue(v));
        }
    }
}
