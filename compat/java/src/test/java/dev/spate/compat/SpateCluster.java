package dev.spate.compat;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;

/**
 * Three (or n) spate-broker processes on 127.0.0.1 forming one cluster: node ids 1..n, all voters
 * of the metadata quorum on free ports. Each broker binds its Kafka port
 * before waiting for the quorum, so starting them one after another works.
 */
final class SpateCluster implements AutoCloseable {
  final List<SpateBroker> brokers = new ArrayList<>();

  static SpateCluster start(String name, int n, String... extra) throws Exception {
    SpateCluster c = new SpateCluster();
    List<String> voters = new ArrayList<>();
    for (int id = 1; id <= n; id++) {
      voters.add(id + "@127.0.0.1:" + SpateBroker.freePort());
    }
    try {
      for (int id = 1; id <= n; id++) {
        List<String> settings = new ArrayList<>();
        settings.add("node.id=" + id);
        settings.add("controller.quorum.voters=" + String.join(",", voters));
        settings.add("http.listeners=");
        settings.add("auto.create.topics.enable=false");
        settings.add("offsets.topic.num.partitions=1");
        settings.addAll(List.of(extra));
        c.brokers.add(SpateBroker.start(name + "-" + id, settings.toArray(String[]::new)));
      }
    } catch (Exception | Error e) {
      c.close();
      throw e;
    }
    return c;
  }

  SpateBroker broker(int id) {
    return brokers.get(id - 1);
  }

  String bootstrap() {
    return brokers.stream().map(SpateBroker::bootstrap).collect(Collectors.joining(","));
  }

  @Override
  public void close() throws Exception {
    for (SpateBroker b : brokers) {
      b.close();
    }
  }
}
