%% The Erlang/OTP peer of actors/benches/supervision.rs: the same measurements on a real OTP
%% supervisor and gen_server, printed as `key=value` lines for the Rust harness to read.
%%
%%   erlc sup_bench.erl && erl -noshell -s sup_bench main -s init stop
%%
%% Restart latency: crash the registered worker (a cast that makes it stop abnormally), then
%% poll `whereis` until a new pid is registered and `gen_server:call` it: crash -> restarted child
%% answering a call. Paced runs sleep 1 ms between crashes; burst runs do not. Crash reports are
%% switched off (logger level none), as the Rust side runs with no log subscriber.
-module(sup_bench).
%% Both a supervisor and a gen_server callback module (init/1 tells them apart by argument).
-behaviour(supervisor).

-export([main/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).
-export([start_worker/1, start_sup/1]).

%% ---- supervisor callbacks ----
init({sup, Children}) ->
    {ok, {#{strategy => one_for_one, intensity => 1000000000, period => 1}, Children}};
%% ---- gen_server callbacks ----
init({worker, _}) ->
    {ok, #{}}.

handle_call(ping, _From, S) -> {reply, pong, S}.
handle_cast(crash, S) -> {stop, crash, S};
handle_cast(noop, S) -> {noreply, S}.
handle_info(_, S) -> {noreply, S}.

start_worker(Name) when is_atom(Name) ->
    gen_server:start_link({local, Name}, ?MODULE, {worker, Name}, []);
start_worker(Id) ->
    gen_server:start_link(?MODULE, {worker, Id}, []).

start_sup(Children) ->
    supervisor:start_link(?MODULE, {sup, Children}).

child(Id, Arg) ->
    #{id => Id, start => {?MODULE, start_worker, [Arg]}, restart => permanent,
      shutdown => 5000, type => worker}.

now_ns() -> erlang:monotonic_time(nanosecond).

wait_new(Old) ->
    case whereis(bench_worker) of
        Pid when is_pid(Pid), Pid =/= Old -> Pid;
        _ -> erlang:yield(), wait_new(Old)
    end.

restart_once() ->
    Old = whereis(bench_worker),
    T0 = now_ns(),
    gen_server:cast(Old, crash),
    _New = wait_new(Old),
    pong = gen_server:call(bench_worker, ping),
    now_ns() - T0.

restarts(0, _Pace, Acc) -> Acc;
restarts(N, Pace, Acc) ->
    case Pace of
        paced -> timer:sleep(1);
        burst -> ok
    end,
    restarts(N - 1, Pace, [restart_once() | Acc]).

percentile(Sorted, P) ->
    N = length(Sorted),
    Idx = max(1, min(N, ceil(P * N))),
    lists:nth(Idx, Sorted).

median(L) -> percentile(lists:sort(L), 0.5).

report(Key, Samples) ->
    Sorted = lists:sort(Samples),
    io:format("~s_p50_us=~.3f~n", [Key, percentile(Sorted, 0.50) / 1000]),
    io:format("~s_p99_us=~.3f~n", [Key, percentile(Sorted, 0.99) / 1000]).

tree_start(N) ->
    Children = [child(I, I) || I <- lists:seq(1, N)],
    T0 = now_ns(),
    {ok, Sup} = start_sup(Children),
    T1 = now_ns(),
    unlink(Sup),
    Ref = monitor(process, Sup),
    exit(Sup, shutdown),
    receive {'DOWN', Ref, process, Sup, _} -> ok end,
    T1 - T0.

throughput(N) ->
    {ok, Pid} = start_worker(make_ref()),
    T0 = now_ns(),
    cast_n(Pid, N),
    pong = gen_server:call(Pid, ping, infinity),
    T1 = now_ns(),
    unlink(Pid),
    exit(Pid, kill),
    N / ((T1 - T0) / 1.0e9).

cast_n(_Pid, 0) -> ok;
cast_n(Pid, N) -> gen_server:cast(Pid, noop), cast_n(Pid, N - 1).

arg(Name, Default) ->
    case os:getenv(Name) of
        false -> Default;
        V -> list_to_integer(V)
    end.

main() ->
    logger:set_primary_config(level, none),
    Paced = arg("BENCH_PACED", 2000),
    Burst = arg("BENCH_BURST", 20000),
    Trees = arg("BENCH_TREES", 20),
    Msgs = arg("BENCH_MSGS", 1000000),
    process_flag(trap_exit, true),
    {ok, _Sup} = start_sup([child(bench_worker, bench_worker)]),
    _ = restarts(200, burst, []),
    report("paced", restarts(Paced, paced, [])),
    T0 = now_ns(),
    BurstSamples = restarts(Burst, burst, []),
    T1 = now_ns(),
    report("burst", BurstSamples),
    io:format("burst_rate_per_s=~.1f~n", [Burst / ((T1 - T0) / 1.0e9)]),
    _ = tree_start(1000),
    io:format("tree1000_start_ms=~.3f~n",
              [median([tree_start(1000) || _ <- lists:seq(1, Trees)]) / 1.0e6]),
    _ = throughput(Msgs div 10),
    io:format("cast_throughput_per_s=~.1f~n",
              [median([throughput(Msgs) || _ <- lists:seq(1, 3)])]),
    io:format("otp_release=~s~n", [erlang:system_info(otp_release)]),
    io:format("schedulers=~p~n", [erlang:system_info(schedulers_online)]).
