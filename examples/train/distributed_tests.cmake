# lowbit-train --distributed under mpirun (included from examples/CMakeLists.txt when lowbit::mpi exists):
# -np 2 has the bytes of -np 1 --shards 2; a rank killed mid-run ends the job with a message and leaves loadable
# checkpoints that resume to the uninterrupted run's bytes; a hung rank is given up after --peer-timeout.
# examples/train/distributed_test.sh does the work and checks every exit code and message itself.
if(LOWBIT_BUILD_TESTS)
    # Options that cannot work exit with 2 and say why, with or without MPI.
    lowbit_add_cli_test(NAME lowbit-train.shards-without-distributed
        SCRIPT "$<TARGET_FILE:lowbit-train> --shards 2; test $? -eq 2"
        PASS "--shards splits each batch over the processes of --distributed: use it with --distributed")
    lowbit_add_cli_test(NAME lowbit-train.gradient-bits-without-distributed
        SCRIPT "$<TARGET_FILE:lowbit-train> --gradient-bits 8; test $? -eq 2" PASS "use it with --distributed")
    lowbit_add_cli_test(NAME lowbit-train.bad-peer-timeout
        SCRIPT "$<TARGET_FILE:lowbit-train> --distributed --peer-timeout 0; test $? -eq 2" PASS "--peer-timeout")
endif()
if(LOWBIT_BUILD_TESTS AND TARGET lowbit::mpi)
    find_program(LOWBIT_BASH bash)
    if(LOWBIT_BASH AND MPIEXEC_EXECUTABLE)
        set(_dist_script ${CMAKE_CURRENT_SOURCE_DIR}/train/distributed_test.sh)
        set(_dist_dir ${CMAKE_CURRENT_BINARY_DIR}/distributed_tests)
        set(_dist_data ${_lowbit_cli_data})  # examples/CMakeLists.txt
        set(_dist_fixture ${_lowbit_cli_fixture})
        # 1000 images in global batches of 50: 20 steps per epoch, on one thread per process.
        set(_dist_args --train-limit 1000 --batch 50 --threads 1 --data ${_dist_data})
        function(_lowbit_distributed_test name mode)
            add_test(NAME lowbit-train.distributed.${name}
                     COMMAND ${LOWBIT_BASH} ${_dist_script} ${mode} $<TARGET_FILE:lowbit-train> ${MPIEXEC_EXECUTABLE}
                             ${_dist_dir}/${name} ${ARGN})
            set_tests_properties(lowbit-train.distributed.${name} PROPERTIES TIMEOUT 600 PROCESSORS 2)
            if(_dist_fixture)
                set_tests_properties(lowbit-train.distributed.${name} PROPERTIES FIXTURES_REQUIRED ${_dist_fixture})
            endif()
        endfunction()
        _lowbit_distributed_test(fp bits --method fp --hidden 32 --epochs 2 ${_dist_args})
        _lowbit_distributed_test(bc bits --method bc --bits 1 --hidden 32 --epochs 2 ${_dist_args})
        _lowbit_distributed_test(sr bits --method sr --bits 2 --hidden 32 --epochs 2 ${_dist_args})
        _lowbit_distributed_test(sqwa bits --method sqwa --bits 2 --hidden 32 --fp-epochs 1 --captures 2
                                 --finetune-epochs 1 ${_dist_args})
        _lowbit_distributed_test(cnn bits --model cnn --method bc --bits 1 --epochs 1 --train-limit 200 --batch 50
                                 --threads 1 --data ${_dist_data})
        _lowbit_distributed_test(codes codes --method sr --bits 2 --hidden 64 --epochs 1 ${_dist_args})
        _lowbit_distributed_test(dead dead --method sr --bits 2 --hidden 32 --epochs 1 ${_dist_args})
        _lowbit_distributed_test(hung hung --method bc --bits 1 --hidden 32 --epochs 1 ${_dist_args})
    endif()
endif()
