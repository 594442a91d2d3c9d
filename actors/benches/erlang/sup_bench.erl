%% The Erlang/OTP peer of actors/benches/supervision.rs: the same measurements on a real OTP
%% supervisor and gen_server. It runs as a server so the Rust harness can interleave blocks of
%% Erlang and Rust measurements in one invocation (both sides then sample the same machine
%% noise). One command per line on stdin, one answer line on stdout:
%%
%%   paced N   -> "samples NS1 NS2 ..."   N restarts 1 ms apart, latency of each in ns
%%   burst N   -> "burst ELAPSED_NS NS1 NS2 ..."   N restarts back to back
%%
%% Each paced or burst block runs on a fresh supervisor (its restart history empty), as the Rust
%% side does.
%%   tree N    -> "samples NS"            start of a supervisor with N workers
%%   casts N   -> "samples NS"            N casts to one gen_server, then a call
%%   release   -> "release OTP_RELEASE"
%%   quit
%%
%%   erlc sup_bench.erl && erl -noshell -s sup_bench main -s init stop
%%
%% Restart latency: crash the registered worker (a cast that makes it stop abnormally), wait for
%% the restarted worker's notice (its init/1 sends {started, Pid} to the bench process), then
%% `gen_server:call` it by its registered name: crash -> restarted child answering a call. Crash
%% reports are switched off (logger level none), as the Rust side runs with no log subscriber.
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
init({worker, bench_worker}) ->
    case whereis(bench_main) of
        undefined -> ok;
        Main -> Main ! {started, self()}
    end,
    {ok, #{}};
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

restart_once() ->
    Old = whereis(bench_worker),
    T0 = now_ns(),
    gen_server:cast(Old, crash),
    receive {started, New} when New =/= Old -> ok end,
    pong = gen_server:call(bench_worker, ping),
    now_ns() - T0.

restarts(0, _Pace, Acc) -> lists:reverse(Acc);
restarts(N, Pace, Acc) ->
    case Pace of
        paced -> timer:sleep(1);
        burst -> ok
    end,
    restarts(N - 1, Pace, [restart_once() | Acc]).

fresh_sup() ->
    {ok, Sup} = start_sup([child(bench_worker, bench_worker)]),
    receive {started, _} -> ok end,
    Sup.

stop_sup(Sup) ->
    unlink(Sup),
    Ref = monitor(process, Sup),
    exit(Sup, shutdown),
    receive {'DOWN', Ref, process, Sup, _} -> ok end.

tree_start(N) ->
    Children = [child(I, I) || I <- lists:seq(1, N)],
    T0 = now_ns(),
    {ok, Sup} = start_sup(Children),
    T1 = now_ns(),
    stop_sup(Sup),
    T1 - T0.

casts(N) ->
    {ok, Pid} = start_worker(make_ref()),
    T0 = now_ns(),
    cast_n(Pid, N),
    pong = gen_server:call(Pid, ping, infinity),
    T1 = now_ns(),
    unlink(Pid),
    exit(Pid, kill),
    T1 - T0.

cast_n(_Pid, 0) -> ok;
cast_n(Pid, N) -> gen_server:cast(Pid, noop), cast_n(Pid, N - 1).

ints(L) -> lists:join(" ", [integer_to_list(X) || X <- L]).

serve() ->
    case io:get_line("") of
        eof -> ok;
        {error, _} -> ok;
        Line ->
            case string:lexemes(string:trim(Line), " ") of
                ["paced", N] ->
                    Sup = fresh_sup(),
                    S = restarts(list_to_integer(N), paced, []),
                    stop_sup(Sup),
                    io:format("samples ~s~n", [ints(S)]),
                    serve();
                ["burst", N] ->
                    Sup = fresh_sup(),
                    T0 = now_ns(),
                    S = restarts(list_to_integer(N), burst, []),
                    Elapsed = now_ns() - T0,
                    stop_sup(Sup),
                    io:format("burst ~b ~s~n", [Elapsed, ints(S)]),
                    serve();
                ["tree", N] ->
                    io:format("samples ~b~n", [tree_start(list_to_integer(N))]),
                    serve();
                ["casts", N] ->
                    io:format("samples ~b~n", [casts(list_to_integer(N))]),
                    serve();
                ["release"] ->
                    io:format("release ~s~n", [erlang:system_info(otp_release)]),
                    serve();
                ["quit"] -> ok;
                Other ->
                    io:format("error unknown command ~p~n", [Other]),
                    serve()
            end
    end.

main() ->
    logger:set_primary_config(level, none),
    process_flag(trap_exit, true),
    register(bench_main, self()),
    serve().
