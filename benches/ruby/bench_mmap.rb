# Ruby prometheus-client-mmap (Debian's ruby-prometheus-client-mmap), measured
# by scripts/bench.sh in the same run as promshm:
#
#   ruby benches/ruby/bench_mmap.rb SERIES WORKERS ITERATIONS
#
# Hot path: counter increment (no labels), increment with 2 label values,
# histogram observe, ns per call (best of 3). Scrape: WORKERS forked processes
# each increment the same SERIES counter series (2 labels); then the time of
# Formats::Text.marshal_multiprocess over their files (best of 3, ms), and
# the bytes of the files. Prints "name value" lines.
require 'tmpdir'
require 'fileutils'

series, workers, iterations = ARGV.map(&:to_i)
dir = Dir.mktmpdir('promshm-bench-rb')
ENV['prometheus_multiproc_dir'] = dir
require 'prometheus/client'
require 'prometheus/client/formats/text'

def now = Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)

def best_ns(iterations)
  (1..3).map do
    t = now
    i = 0
    while i < iterations
      yield i
      i += 1
    end
    (now - t).to_f / iterations
  end.min
end

begin
  hot_dir = File.join(dir, 'hot')
  FileUtils.mkdir_p(hot_dir)
  Prometheus::Client.configuration.multiprocess_files_dir = hot_dir
  reg = Prometheus::Client.registry
  plain = reg.counter(:bench_plain, 'Plain.')
  labelled = reg.counter(:bench_labelled, 'Labelled.')
  hist = reg.histogram(:bench_hist, 'Histogram.')
  values = (0...1024).map { |i| i * 0.002 }
  lbl = { method: 'GET', path: '/' }
  puts "inc #{best_ns(iterations) { plain.increment }}"
  puts "labels_inc #{best_ns(iterations) { labelled.increment(lbl) }}"
  puts "observe #{best_ns(iterations) { |i| hist.observe({}, values[i & 1023]) }}"

  scrape_dir = File.join(dir, 'scrape')
  FileUtils.mkdir_p(scrape_dir)
  pids = (0...workers).map do
    fork do
      Prometheus::Client.configuration.multiprocess_files_dir = scrape_dir
      Prometheus::Client.reinitialize_on_pid_change rescue nil
      c = Prometheus::Client::Counter.new(:bench_series, 'Series.')
      series.times { |s| c.increment({ path: "/api/item/#{s}", code: '200' }) }
      exit!(0)
    end
  end
  pids.each { |p| Process.wait(p) }
  raise 'a worker failed' unless $?.success?
  bytes = Dir.glob(File.join(scrape_dir, '*.db')).sum { |f| File.size(f) }
  out = ''
  ms = (1..3).map do
    t = now
    out = Prometheus::Client::Formats::Text.marshal_multiprocess(scrape_dir)
    (now - t) / 1e6
  end.min
  lines = out.lines.count { |l| l.start_with?('bench_series') }
  raise "scrape has #{lines} series, expected #{series}" unless lines == series
  raise 'wrong totals' unless out.include?(%(bench_series{code="200",path="/api/item/0"} #{workers})) ||
                              out.include?(%(bench_series{path="/api/item/0",code="200"} #{workers}))
  puts "scrape_ms #{ms}"
  puts "store_bytes #{bytes}"
ensure
  FileUtils.rm_rf(dir)
end
