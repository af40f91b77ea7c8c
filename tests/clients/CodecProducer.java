// A producer no one on this project wrote: Apache Kafka's own Java client (kafka-clients, on the
// class path scripts/apache-kafka/classpath prints), run as a single-file program:
//
//   java -cp "$(scripts/apache-kafka/classpath)" tests/clients/CodecProducer.java BOOTSTRAP TOPIC
//
// Reads lines `CODEC<TAB>KEY<TAB>VALUE_HEX` on standard input and produces each value (bytes,
// hex-decoded: TodoChunks as the test encoded them) with its key, through one producer per
// codec (compression.type = CODEC: none, gzip, snappy, lz4 or zstd), batching as a real client
// does (linger.ms 20), acks=all. Prints `produced N` once every record is acknowledged; exits 1
// on the first failed send.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.Future;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class CodecProducer {
  public static void main(String[] args) throws Exception {
    if (args.length != 2) {
      System.err.println("usage: CodecProducer BOOTSTRAP TOPIC < lines of CODEC\\tKEY\\tVALUE_HEX");
      System.exit(2);
    }
    Map<String, KafkaProducer<byte[], byte[]>> producers = new TreeMap<>();
    List<Future<RecordMetadata>> sent = new ArrayList<>();
    BufferedReader in =
        new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    String line;
    while ((line = in.readLine()) != null) {
      String[] f = line.split("\t", -1);
      if (f.length != 3) {
        System.err.println("not CODEC<TAB>KEY<TAB>VALUE_HEX: " + line);
        System.exit(2);
      }
      KafkaProducer<byte[], byte[]> producer =
          producers.computeIfAbsent(f[0], codec -> open(args[0], codec));
      byte[] key = f[1].getBytes(StandardCharsets.UTF_8);
      byte[] value = HexFormat.of().parseHex(f[2]);
      sent.add(producer.send(new ProducerRecord<>(args[1], key, value)));
    }
    for (KafkaProducer<byte[], byte[]> p : producers.values()) {
      p.flush();
    }
    for (Future<RecordMetadata> f : sent) {
      f.get();
    }
    for (KafkaProducer<byte[], byte[]> p : producers.values()) {
      p.close();
    }
    System.out.println("produced " + sent.size());
  }

  static KafkaProducer<byte[], byte[]> open(String bootstrap, String codec) {
    Properties p = new Properties();
    p.put("bootstrap.servers", bootstrap);
    p.put("compression.type", codec);
    p.put("acks", "all");
    p.put("linger.ms", "20");
    p.put("key.serializer", ByteArraySerializer.class.getName());
    p.put("value.serializer", ByteArraySerializer.class.getName());
    return new KafkaProducer<>(p);
  }
}
